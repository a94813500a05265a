//! The disk spool across process deaths: the forwarder binary as a child process, killed with
//! SIGKILL in the middle of a Blueflood outage (at deterministic pseudo-random moments) and
//! restarted on the same spool directory; stopped with SIGTERM while Blueflood is down; its
//! segment files damaged on purpose between runs. What must survive is checked point by point
//! against the Blueflood double.

use crate::reliability_child;
use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use reliability_child::{Child, n, spawn};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(60);

/// The default fsync interval, and what a point may wait in memory before its batch is
/// written while Blueflood is failing (the flusher's 100 ms linger), plus generous slack for
/// the sender's bytes to be read on a loaded 2-core CI machine: a batch fully sent longer ago
/// than this before a SIGKILL must survive it. (A SIGKILL alone does not lose written but
/// unsynced data — the page cache survives the process — so this bound is the issue's, looser
/// than what the test can observe.)
const FSYNC: Duration = Duration::from_millis(1000);
const SURVIVES_AFTER: Duration = Duration::from_millis(1000 + 100 + 1400);

fn spool_args(dir: &Path) -> Vec<String> {
    vec![
        "--spool-dir".into(),
        dir.display().to_string(),
        "--spool-fsync".into(),
        FSYNC.as_millis().to_string(),
        "--spool-drain-rate".into(),
        "200000".into(),
    ]
}

fn spawn_spooled(case: &str, bf: &BluefloodDouble, dir: &Path, extra: &[&str]) -> Child {
    let mut args = spool_args(dir);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(case, &bf.url(), &args)
}

/// A sequential line sender: batch `b` holds `per_batch` points named `{stem}.b{b}.m{i}`;
/// remembers when each batch was completely written.
struct Sender {
    stem: String,
    per_batch: usize,
    done: Vec<(usize, Instant)>,
}

impl Sender {
    fn new(stem: &str, per_batch: usize) -> Self {
        Self {
            stem: stem.into(),
            per_batch,
            done: Vec::new(),
        }
    }

    async fn batch(&mut self, addr: std::net::SocketAddr, b: usize) -> bool {
        let ts = support::now_ms() / 1000;
        let mut text = String::new();
        for i in 0..self.per_batch {
            text.push_str(&format!("{}.b{b}.m{i} {} {ts}\n", self.stem, b * 1000 + i));
        }
        let sent = async {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            tokio::io::AsyncWriteExt::write_all(&mut s, text.as_bytes()).await?;
            tokio::io::AsyncWriteExt::shutdown(&mut s).await
        }
        .await;
        if sent.is_ok() {
            self.done.push((b, Instant::now()));
        }
        sent.is_ok()
    }

    fn names(&self, batches: impl Iterator<Item = usize>) -> Vec<String> {
        batches
            .flat_map(|b| (0..self.per_batch).map(move |i| format!("pre.{}.b{b}.m{i}", self.stem)))
            .collect()
    }
}

fn stored_names(bf: &BluefloodDouble) -> HashSet<String> {
    bf.stored().into_iter().map(|p| p.metric_name).collect()
}

/// xorshift: deterministic "random" kill moments.
struct Rng(u64);
impl Rng {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_an_outage_loses_nothing_received_before_the_last_fsync() {
    let case = "SIGKILL during an outage, restarted three times";
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut rng = Rng(0x5eed_0fb1_0f00);
    let mut sender = Sender::new("crash", 50);
    let mut must: Vec<usize> = Vec::new();
    let mut b = 0;
    for round in 0..3 {
        let mut c = spawn_spooled(&format!("{case}, run {round}"), &bf, dir.path(), &[]);
        let kill_after = Duration::from_millis(rng.next_ms(3000, 5500));
        let started = Instant::now();
        while started.elapsed() < kill_after {
            sender.batch(c.line, b).await;
            b += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = c.status().await;
        c.kill9();
        let killed = Instant::now();
        assert_eq!(bf.stored_count(), 0, "{case}: stored while down");
        assert!(
            n(&before["ledger"]["spooled"]) > 0,
            "{case}, run {round}: nothing spooled during the outage: {before:#}"
        );
        must.extend(
            sender
                .done
                .iter()
                .filter(|(_, at)| killed.duration_since(*at) > SURVIVES_AFTER)
                .map(|(b, _)| *b),
        );
        // The batches sent in the last moments may or may not have survived: neither is owed.
        sender.done.clear();
    }
    let c = spawn_spooled(&format!("{case}, recovery"), &bf, dir.path(), &[]);
    let s = c.status().await;
    assert!(
        n(&s["spool"]["replay_total"]) > 0,
        "{case}: nothing recovered from the spool at start: {s:#}"
    );
    bf.set_down(false);
    let must_names = sender.names(must.iter().copied());
    assert!(must_names.len() >= 3 * 50, "{case}: too few batches sent");
    let end = Instant::now() + WAIT;
    loop {
        let stored = stored_names(&bf);
        let missing: Vec<&String> = must_names.iter().filter(|m| !stored.contains(*m)).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > end {
            panic!(
                "{case}: {} of {} datapoints received before the last fsync were lost, e.g. {:?}; /status {:#}\nlog:\n{}",
                missing.len(),
                must_names.len(),
                &missing[..missing.len().min(5)],
                c.status().await,
                c.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing Blueflood stored comes from anywhere but the sender.
    let sent: HashSet<String> = sender.names(0..b).into_iter().collect();
    assert!(
        stored_names(&bf).is_subset(&sent),
        "{case}: unknown points stored"
    );
    let s = c
        .wait_status(WAIT, "spool drained", |s| {
            s["spool"]["datapoints"] == 0
                && s["ledger"]["in_flight"] == 0
                && s["ledger"]["balanced"] == true
        })
        .await;
    assert_eq!(n(&s["ledger"]["dropped_total"]), 0, "{case}: {s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_an_outage_spools_then_a_damaged_spool_replays_the_rest() {
    let case = "SIGTERM during an outage, then bit flip and truncation";
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    // Small bodies, so the spool holds many records.
    let c = spawn_spooled(
        case,
        &bf,
        dir.path(),
        &["--shutdown-timeout", "2", "--spool-bytes", "4MiB"],
    );
    let mut sender = Sender::new("term", 200);
    for b in 0..60 {
        assert!(sender.batch(c.line, b).await, "{case}: send");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = 60 * 200;
    c.wait_status(WAIT, "everything received", |s| {
        n(&s["ledger"]["received_total"]) == sent
    })
    .await;
    let stopped = c.stop(Duration::from_secs(30)).await;
    let stopped = stopped.expect("stopped line");
    assert_eq!(
        stopped["dropped"], 0,
        "{case}: SIGTERM dropped points: {stopped}"
    );
    assert_eq!(bf.stored_count(), 0);

    let recs = support::spool_records(dir.path());
    let total: usize = recs.iter().map(|r| r.2).sum();
    assert_eq!(
        total as u64, sent,
        "{case}: the spool does not hold every point sent"
    );
    assert!(
        recs.len() >= 4,
        "{case}: want several records, got {}",
        recs.len()
    );
    // Flip one bit inside the second record: it and the rest of its segment are cut.
    let (seg, off, _) = recs[1].clone();
    let lost_flip: usize = recs
        .iter()
        .filter(|r| r.0 == seg && r.1 >= off)
        .map(|r| r.2)
        .sum();
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[off + 20] ^= 0x10;
    std::fs::write(&seg, &bytes).expect("write");
    // Tear the last record of the last segment (when it is another segment).
    let last = recs.last().expect("records").clone();
    let mut lost_tear = 0;
    if last.0 != seg {
        let len = std::fs::metadata(&last.0).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last.0)
            .expect("open")
            .set_len(len - 3)
            .expect("truncate");
        lost_tear = last.2;
    }
    let expect = sent - (lost_flip + lost_tear) as u64;

    bf.set_down(false);
    let c = spawn_spooled(&format!("{case}, restart"), &bf, dir.path(), &[]);
    let s = c
        .wait_status(WAIT, "replay done", |s| {
            s["spool"]["datapoints"] == 0
                && s["ledger"]["in_flight"] == 0
                && n(&s["ledger"]["delivered"]) == expect
        })
        .await;
    let corrupt = n(&s["spool"]["corrupt_records"]);
    assert_eq!(
        corrupt,
        1 + u64::from(lost_tear > 0),
        "{case}: corrupt records counted: {s:#}"
    );
    assert_eq!(n(&s["ledger"]["recovered"]), expect, "{case}: {s:#}");
    assert_eq!(bf.stored_count() as u64, expect, "{case}: stored");
    let m = c.metrics().await;
    assert_eq!(
        m.get("blueflood_forward_spool_corrupt_records_total")
            .copied(),
        Some(corrupt as f64),
        "{case}: /metrics"
    );
    assert!(
        c.log_lines()
            .iter()
            .any(|l| l.contains("damaged records found and cut off")),
        "{case}: no log line for the damage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_forwarder_on_the_same_spool_dir_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    let _first = spawn_spooled("first", &bf, dir.path(), &[]);
    let out = second_forwarder(&bf, dir.path(), &[])
        .output()
        .expect("run second");
    assert!(
        !out.status.success(),
        "second forwarder started on a locked spool"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spool_dir") && err.contains("in use"),
        "message should name spool_dir and say it is in use: {err}"
    );
}

/// A second forwarder on `dir`, the spool of one already running, with `extra` arguments.
fn second_forwarder(bf: &BluefloodDouble, dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(reliability_child::BIN);
    cmd.args([
        "-b",
        &bf.url(),
        "-e",
        "tcp:0:interface=127.0.0.1",
        "--admin-addr",
        "127.0.0.1:0",
    ])
    .args(extra)
    .args(spool_args(dir));
    cmd
}

/// Waits (bounded) for a process that should refuse to start; kills it and fails otherwise.
fn exits_within(
    case: &str,
    mut child: std::process::Child,
    within: Duration,
) -> std::process::Output {
    let end = Instant::now() + within;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{case}: still running after {within:?}: it shares the spool; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_lock_file_does_not_let_a_second_forwarder_share_the_spool() {
    let case = "second forwarder after the lock file was deleted";
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    let _first = spawn_spooled("first", &bf, dir.path(), &[]);
    // Whatever the spool keeps in its directory, deleting it must not unlock the directory.
    match std::fs::remove_file(dir.path().join("lock")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("{case}: delete the lock file: {e}"),
    }
    let second = second_forwarder(&bf, dir.path(), &["--log-level", "error"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run second");
    let out = exits_within(case, second, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{case}: exit code");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spool_dir")
            && err.contains("in use")
            && err.contains(&dir.path().display().to_string()),
        "{case}: the message should name spool_dir and its directory and say it is in use: {err}"
    );
}

/// This process's real user id, from /proc (no libc call: `unsafe` is forbidden here too).
fn uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_directory_it_cannot_write_is_still_replayed() {
    use blueflood_forward::model::Datapoint;
    use blueflood_forward::spool::store::{FullPolicy, Store, StoreOptions};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let case = "read-only spool directory";
    let test = "a_spool_directory_it_cannot_write_is_still_replayed";
    let tmp = tempfile::tempdir().expect("tempdir");
    let perms = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    perms(tmp.path(), 0o755);
    let dir = tmp.path().join("spool");
    let now = support::now_ms();
    {
        // An earlier run's records, written by the product's store.
        let (mut store, _) = Store::open(
            &dir,
            StoreOptions {
                max_bytes: 1 << 30,
                // One record per segment.
                segment_bytes: 1024,
                max_record_bytes: 64 << 20,
                full_policy: FullPolicy::DropOldest,
                sync_every_append: false,
            },
        )
        .expect("open");
        for r in 0..4 {
            let points: Vec<Datapoint> = (0..1000)
                .map(|i| Datapoint {
                    name: format!("pre.ro.r{r}.m{i}").into(),
                    timestamp_ms: now - 60_000,
                    value: i as f64,
                })
                .collect();
            store.append(&points, 0).expect("append");
        }
        store.sync().expect("sync");
    }
    // The last segment cannot even be read (by a process that is not root).
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 4, "{case}: {segs:?}");
    let before = support::spool_records(&dir);
    perms(&segs[3], 0o000);
    perms(&dir, 0o555);
    // Root writes anywhere whatever the mode: the forwarder runs as nobody then. The binary is
    // linked next to the spool so that nobody can reach it whatever the checkout's modes.
    let linked = tmp.path().join("blueflood-forward");
    let bin = match std::fs::hard_link(reliability_child::BIN, &linked) {
        Ok(()) => linked,
        Err(_) => std::path::PathBuf::from(reliability_child::BIN),
    };
    let as_nobody = uid() == Some(0);
    let command = || {
        let mut c = std::process::Command::new(&bin);
        if as_nobody {
            c.uid(65534).gid(65534);
        }
        c
    };
    match command().arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => {
            perms(&dir, 0o755);
            support::prerequisite_missing(
                test,
                &format!("cannot run the forwarder as uid 65534: {other:?}"),
            );
            return;
        }
    }
    let bf = BluefloodDouble::start().await;
    let dir_s = dir.display().to_string();
    let c = reliability_child::spawn_command(
        case,
        command(),
        &bf.url(),
        &["--spool-dir", &dir_s, "--spool-drain-rate", "200000"],
    );
    let s = c
        .wait_status(WAIT, "the spool replayed", |s| {
            n(&s["ledger"]["delivered"]) == 3000
                && s["spool"]["datapoints"] == 0
                && s["ledger"]["in_flight"] == 0
                && s["ledger"]["balanced"] == true
        })
        .await;
    assert_eq!(n(&s["ledger"]["recovered"]), 3000, "{case}: {s:#}");
    assert_eq!(n(&s["ledger"]["dropped_total"]), 0, "{case}: {s:#}");
    assert_eq!(s["spool"]["writable"], false, "{case}: {s:#}");
    assert_eq!(s["spool"]["lost_segments"], 1, "{case}: {s:#}");
    assert_eq!(bf.stored_count(), 3000, "{case}: stored");
    assert!(
        c.log_lines()
            .iter()
            .any(|l| l.contains("cannot be written")),
        "{case}: no log line says the spool cannot be written; log:\n{}",
        c.log_tail(20)
    );
    c.stop(Duration::from_secs(30)).await;
    // Nothing could be acknowledged on disk: the records are all still there (at least once).
    perms(&segs[3], 0o644);
    assert_eq!(
        support::spool_records(&dir),
        before,
        "{case}: the directory changed"
    );
    perms(&dir, 0o755);
}
