//! The disk spool in one process, through real sockets and the Blueflood double: an outage
//! goes to disk and comes back in order once Blueflood recovers; the full policies hold and
//! the ledger (now with `spooled` and `recovered`) balances; a spool directory that cannot be
//! used leaves the forwarder running on memory, counted; a slow Blueflood makes the buffer
//! spill past the threshold; `/status` and `/metrics` show the spool.

use crate::harness;
use crate::support;

use std::time::Duration;

use blueflood_forward::accounting::DropReason;
use blueflood_forward::config::settings::{
    BufferPolicy, Protocol, Settings, SpoolFsync, SpoolFullPolicy, SpoolSettings,
};
use harness::{Forwarder, settings};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(30);

fn spooled(bf: &BluefloodDouble, dir: &std::path::Path) -> Settings {
    spooled_in(bf, dir, 1 << 30)
}

/// With a spool of `max_bytes` (4 MiB, the least, makes 256 KiB segments).
fn spooled_in(bf: &BluefloodDouble, dir: &std::path::Path, max_bytes: u64) -> Settings {
    let mut s = settings(&bf.url());
    s.spool = Some(SpoolSettings {
        dir: dir.to_path_buf(),
        max_bytes,
        full_policy: SpoolFullPolicy::DropOldest,
        fsync: SpoolFsync::Every(Duration::from_millis(200)),
        threshold: 0.5,
        drain_rate: 1_000_000,
    });
    s
}

/// `n` line-protocol points `{stem}.{i}` now, in one connection.
async fn send_lines(f: &Forwarder, stem: &str, from: usize, n: usize) {
    let ts = support::now_ms() / 1000;
    let text: String = (from..from + n)
        .map(|i| format!("{stem}.{i} {i} {ts}\n"))
        .collect();
    support::send_tcp(f.addr(Protocol::LineTcp), text.as_bytes()).await;
}

/// Bytes in the spool's segment files now. The forwarder may evict a segment while this reads
/// the directory (a live batch still in flight can be spilled at any time): a file gone
/// between listing and `stat` holds nothing.
fn spool_bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| match e.metadata() {
            Ok(m) => m.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => panic!("stat {}: {err}", e.path().display()),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_goes_to_disk_and_drains_when_blueflood_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let f = Forwarder::start(spooled(&bf, dir.path())).await;
    for b in 0..20 {
        send_lines(&f, "out", b * 500, 500).await;
    }
    f.wait_until(WAIT, "everything on disk", |s| {
        s.received() == 10_000
            && s.spooled_points + s.in_flight_points == 10_000
            && s.spooled_points > 0
    })
    .await;
    // On disk, not in memory: the buffer is empty and the files hold the points.
    let s = f.snapshot();
    assert_eq!(s.buffered_points, 0, "{s:#?}");
    // On a loaded machine a live batch can still be in flight (its last attempt failing)
    // when the condition above first holds; it is spilled once that attempt fails.
    let end = std::time::Instant::now() + WAIT;
    while spool_bytes_on_disk(dir.path()) <= 10_000 * 10 {
        assert!(
            std::time::Instant::now() < end,
            "the spool holds {} bytes, not the 10000 points, {WAIT:?} on; {:#?}",
            spool_bytes_on_disk(dir.path()),
            f.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bf.stored_count(), 0);
    bf.set_down(false);
    f.wait_until(WAIT, "all delivered", |s| s.delivered == 10_000)
        .await;
    let s = f.snapshot();
    assert_eq!(s.dropped_total(), 0, "{s:#?}");
    assert_eq!(s.spooled_points, 0, "{s:#?}");
    assert!(s.balanced(), "{s:#?}");
    assert_eq!(bf.stored_count(), 10_000);
    let s = f.stop().await;
    assert_eq!(s.delivered, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_its_oldest_segments_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let max = 4u64 << 20;
    let f = Forwarder::start(spooled_in(&bf, dir.path(), max)).await;
    // ~60 bytes per point on disk: 150k points are about twice the bound.
    let total = 150_000;
    for b in 0..(total / 5000) {
        send_lines(&f, "full.padding.padding.padding", b * 5000, 5000).await;
    }
    f.wait_until(WAIT, "all received and settled to disk", |s| {
        s.received() == total as u64
            && s.buffered_points == 0
            && s.balanced()
            && s.dropped(DropReason::SpoolFull) > 0
    })
    .await;
    assert!(
        spool_bytes_on_disk(dir.path()) <= max,
        "spool bigger than its bound: {}",
        spool_bytes_on_disk(dir.path())
    );
    bf.set_down(false);
    f.wait_until(WAIT, "spool drained", |s| {
        s.spooled_points == 0 && s.in_flight_points == 0 && s.buffered_points == 0
    })
    .await;
    let s = f.snapshot();
    let evicted = s.dropped(DropReason::SpoolFull);
    assert_eq!(s.delivered + evicted, total as u64, "{s:#?}");
    assert_eq!(s.dropped_total(), evicted, "{s:#?}");
    assert_eq!(bf.stored_count() as u64, s.delivered);
    // The newest points survive: drop_oldest deletes from the front.
    let last = format!("pre.full.padding.padding.padding.{}", total - 1);
    assert!(bf.stored().iter().any(|p| p.metric_name == last));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_under_block_keeps_points_in_memory_and_the_buffer_policy_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut s = spooled_in(&bf, dir.path(), 4 << 20);
    if let Some(sp) = s.spool.as_mut() {
        sp.full_policy = SpoolFullPolicy::Block;
    }
    s.buffer.max_bytes = 2 << 20;
    s.buffer.policy = BufferPolicy::DropNewest;
    let f = Forwarder::start(s).await;
    let total = 150_000;
    for b in 0..(total / 5000) {
        send_lines(&f, "blk.padding.padding.padding", b * 5000, 5000).await;
    }
    f.wait_until(WAIT, "received, spool full, buffer full", |s| {
        s.received() == total as u64 && s.dropped(DropReason::BufferFull) > 0 && s.balanced()
    })
    .await;
    let s = f.snapshot();
    assert_eq!(
        s.dropped(DropReason::SpoolFull),
        0,
        "block never evicts: {s:#?}"
    );
    assert!(spool_bytes_on_disk(dir.path()) <= 4 << 20);
    assert!(s.buffered_points + s.in_flight_points > 0, "{s:#?}");
    bf.set_down(false);
    f.wait_until(WAIT, "everything settled", |s| {
        s.spooled_points == 0 && s.in_flight_points == 0 && s.buffered_points == 0
    })
    .await;
    let s = f.snapshot();
    assert_eq!(
        s.delivered + s.dropped(DropReason::BufferFull),
        total as u64,
        "{s:#?}"
    );
    assert_eq!(bf.stored_count() as u64, s.delivered);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_spool_dir_leaves_the_forwarder_on_memory_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A regular file where the directory should be: ENOTDIR on every attempt.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let f = Forwarder::start(spooled(&bf, &file.join("spool"))).await;
    send_lines(&f, "mem", 0, 1000).await;
    f.wait_until(WAIT, "held in memory", |s| {
        s.received() == 1000 && s.buffered_points + s.in_flight_points == 1000
    })
    .await;
    let status = admin_status(&f).await;
    assert_eq!(status["spool"]["available"], false, "{status:#}");
    assert!(
        status["spool"]["write_errors"].as_u64() >= Some(1),
        "{status:#}"
    );
    bf.set_down(false);
    f.wait_until(WAIT, "delivered from memory", |s| s.delivered == 1000)
        .await;
    let s = f.stop().await;
    assert_eq!(s.dropped_total(), 0);
    assert_eq!(s.spooled_points, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_blueflood_makes_the_buffer_spill_past_the_threshold_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    // Healthy but slow: every answer takes 300 ms, one request at a time.
    bf.set_delay(Some(Duration::from_millis(300)));
    let mut s = spooled(&bf, dir.path());
    s.forward.concurrency = 1;
    s.buffer.max_bytes = 1 << 20;
    // A burst faster than any disk: back-pressure, so the test is about spilling, not dropping.
    s.buffer.policy = BufferPolicy::Block;
    s.forward.max_body_bytes = 64 << 10;
    let f = Forwarder::start(s).await;
    let total = 40_000;
    for b in 0..(total / 2000) {
        send_lines(&f, "slow", b * 2000, 2000).await;
    }
    f.wait_until(WAIT, "spilled", |s| s.spool_written > 0).await;
    bf.set_delay(None);
    f.wait_until(WAIT, "all delivered", |s| s.delivered == total as u64)
        .await;
    let s = f.stop().await;
    assert_eq!(s.dropped_total(), 0, "{s:#?}");
    assert_eq!(bf.stored_count(), total);
}

async fn admin_get(f: &Forwarder, path: &str) -> String {
    let url = format!("http://{}{path}", f.running.admin_addr());
    reqwest::get(url)
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("body")
}

async fn admin_status(f: &Forwarder) -> serde_json::Value {
    serde_json::from_str(&admin_get(f, "/status").await).expect("status json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_show_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let f = Forwarder::start(spooled(&bf, dir.path())).await;
    send_lines(&f, "st", 0, 3000).await;
    f.wait_until(WAIT, "spooled", |s| s.spool_written == 3000)
        .await;
    let st = admin_status(&f).await;
    let sp = &st["spool"];
    assert_eq!(sp["available"], true, "{st:#}");
    assert_eq!(sp["spooling"], true, "{st:#}");
    assert!(sp["bytes"].as_u64() > Some(0), "{st:#}");
    assert!(sp["segments"].as_u64() >= Some(1), "{st:#}");
    assert!(sp["oldest_age_seconds"].as_f64().is_some(), "{st:#}");
    assert_eq!(sp["max_bytes"], 1u64 << 30);
    assert_eq!(st["ledger"]["balanced"], true, "{st:#}");
    let metrics = admin_get(&f, "/metrics").await;
    for name in [
        "blueflood_forward_spool_datapoints ",
        "blueflood_forward_spool_bytes ",
        "blueflood_forward_spool_segments ",
        "blueflood_forward_spool_oldest_age_seconds ",
        "blueflood_forward_spool_written_datapoints_total ",
        "blueflood_forward_spool_corrupt_records_total 0",
        "blueflood_forward_spool_replay_total_datapoints 0",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name:?}:\n{metrics}"
        );
    }
    bf.set_down(false);
    f.wait_until(WAIT, "delivered", |s| s.delivered == 3000)
        .await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_drains_in_order_and_no_faster_than_the_drain_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut s = spooled(&bf, dir.path());
    let rate = 3000;
    if let Some(sp) = s.spool.as_mut() {
        sp.drain_rate = rate;
    }
    let f = Forwarder::start(s).await;
    let total = 12_000;
    for b in 0..(total / 500) {
        send_lines(&f, "ord", b * 500, 500).await;
        // One record per batch or two (the flusher writes every 100 ms while spooling).
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    f.wait_until(WAIT, "all on disk", |s| {
        s.spool_written == total as u64 && s.buffered_points == 0
    })
    .await;
    // The record retried through the outage and the next one may go at once (a burst of one
    // record), then the pace holds: the floor leaves out the two largest records.
    let mut sizes: Vec<usize> = support::spool_records(dir.path())
        .iter()
        .map(|r| r.2)
        .collect();
    sizes.sort_unstable();
    let burst: usize = sizes.iter().rev().take(2).sum();
    let recovered = std::time::Instant::now();
    bf.set_down(false);
    f.wait_until(WAIT, "all delivered", |s| s.delivered == total as u64)
        .await;
    // A lower bound only: a slow machine takes longer, never shorter.
    let floor = Duration::from_secs_f64(total.saturating_sub(burst) as f64 / rate as f64);
    assert!(
        recovered.elapsed() >= floor,
        "drained {total} points in {:?}, faster than {rate}/s allows (records {sizes:?})",
        recovered.elapsed()
    );
    // Oldest first: Blueflood saw the points in the order they were sent.
    let seq: Vec<usize> = bf
        .stored()
        .iter()
        .filter_map(|p| p.metric_name.rsplit('.').next()?.parse().ok())
        .collect();
    assert_eq!(seq.len(), total);
    assert!(
        seq.windows(2).all(|w| w[0] < w[1]),
        "spool replayed out of order"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_error_mid_run_keeps_points_in_memory_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    // 256 KiB segments: the first fills quickly and the spool must open a second one.
    let f = Forwarder::start(spooled_in(&bf, dir.path(), 4 << 20)).await;
    send_lines(&f, "err.padding.padding", 0, 500).await;
    f.wait_until(WAIT, "first segment written", |s| s.spool_written == 500)
        .await;
    // The next segment's name is taken by a directory: creating it fails (as a full or
    // read-only disk would make it fail).
    let last: u64 = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| {
            let p = e.expect("entry").path();
            (p.extension()? == "seg").then(|| p.file_stem()?.to_str()?.parse().ok())?
        })
        .max()
        .expect("a segment");
    let blocker = dir.path().join(format!("{:020}.seg", last + 1));
    std::fs::create_dir(&blocker).expect("blocker");
    for b in 1..16 {
        send_lines(&f, "err.padding.padding", b * 500, 500).await;
    }
    let total = 16 * 500;
    f.wait_until(WAIT, "received", |s| s.received() == total)
        .await;
    let st = loop {
        let st = admin_status(&f).await;
        if st["spool"]["write_errors"].as_u64() >= Some(1) {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st["spool"]["available"], false, "{st:#}");
    let s = f.snapshot();
    assert_eq!(s.dropped_total(), 0, "{s:#?}");
    assert!(
        s.buffered_points + s.in_flight_points > 0,
        "held in memory: {s:#?}"
    );
    // The disk comes back, then Blueflood: everything arrives, from memory and from disk.
    std::fs::remove_dir(&blocker).expect("remove blocker");
    bf.set_down(false);
    f.wait_until(Duration::from_secs(60), "all delivered", |s| {
        s.delivered == total && s.spooled_points == 0
    })
    .await;
    let s = f.stop().await;
    assert_eq!(s.dropped_total(), 0, "{s:#?}");
    assert_eq!(bf.stored_count() as u64, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_left_by_an_earlier_run_is_replayed_at_start_and_expired_points_are_dropped() {
    use blueflood_forward::model::Datapoint;
    use blueflood_forward::spool::store::{FullPolicy, Store, StoreOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let now = support::now_ms();
    let point = |name: String, ts: i64| Datapoint {
        name: name.into(),
        timestamp_ms: ts,
        value: 1.5,
    };
    {
        // What an earlier run left: three records, one of them four days old.
        let (mut store, _) = Store::open(
            dir.path(),
            StoreOptions {
                max_bytes: 1 << 30,
                segment_bytes: 64 << 20,
                max_record_bytes: 64 << 20,
                full_policy: FullPolicy::DropOldest,
                sync_every_append: false,
            },
        )
        .expect("open");
        let fresh = |from: usize| -> Vec<Datapoint> {
            (from..from + 1000)
                .map(|i| point(format!("pre.old.{i}"), now - 60_000))
                .collect()
        };
        let stale: Vec<Datapoint> = (0..500)
            .map(|i| point(format!("pre.stale.{i}"), now - 4 * 86_400_000))
            .collect();
        store.append(&fresh(0), 0).expect("append");
        store.append(&stale, 0).expect("append");
        store.append(&fresh(1000), 0).expect("append");
        store.sync().expect("sync");
    }
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(spooled(&bf, dir.path())).await;
    f.wait_until(WAIT, "replayed", |s| {
        s.recovered == 2500 && s.spooled_points == 0 && s.in_flight_points == 0
    })
    .await;
    let s = f.snapshot();
    assert_eq!(s.delivered, 2000, "{s:#?}");
    assert_eq!(s.dropped(DropReason::OutOfWindow), 500, "{s:#?}");
    assert!(s.balanced(), "{s:#?}");
    assert_eq!(bf.stored_count(), 2000);
    assert!(
        bf.stored()
            .iter()
            .all(|p| p.metric_name.starts_with("pre.old."))
    );
    let st = admin_status(&f).await;
    assert_eq!(st["spool"]["replay_total"], 2500, "{st:#}");
    assert_eq!(st["spool"]["replay_done"], 2500, "{st:#}");
    f.stop().await;
    // Acknowledged and deleted: a restart replays nothing.
    let f = Forwarder::start(spooled(&bf, dir.path())).await;
    let s = f.snapshot();
    assert_eq!(s.recovered, 0, "{s:#?}");
    f.stop().await;
}

/// The segment files of a spool directory, oldest first.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_deleted_while_running_is_counted_lost_and_the_later_ones_drain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    // 256 KiB segments, and records of up to 8192 points (~350 KiB here) each start one.
    let f = Forwarder::start(spooled_in(&bf, dir.path(), 4 << 20)).await;
    let total = 60_000u64;
    for b in 0..60 {
        send_lines(&f, "gone.padding.padding", b * 1000, 1000).await;
    }
    f.wait_until(WAIT, "everything on disk", |s| {
        s.received() == total
            && s.buffered_points == 0
            && s.spooled_points + s.in_flight_points == total
    })
    .await;
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 4, "expected several segments: {segs:?}");
    // The drainer holds the oldest segment open (its first record is being retried); the newest
    // is being appended to. The second one has not been opened yet: delete it.
    let victim = segs[1].clone();
    let lost: u64 = support::spool_records(dir.path())
        .iter()
        .filter(|(path, _, _)| *path == victim)
        .map(|(_, _, points)| *points as u64)
        .sum();
    assert!(lost > 0);
    std::fs::remove_file(&victim).expect("delete a segment");
    bf.set_down(false);
    f.wait_until(WAIT, "the spool drained past the deleted segment", |s| {
        s.spooled_points == 0 && s.in_flight_points == 0 && s.buffered_points == 0
    })
    .await;
    let s = f.snapshot();
    assert!(s.balanced(), "{s:#?}");
    assert_eq!(s.delivered, total - lost, "{s:#?}");
    assert_eq!(s.dropped_total(), lost, "{s:#?}");
    assert_eq!(bf.stored_count() as u64, total - lost);
    let last = format!("pre.gone.padding.padding.{}", total - 1);
    assert!(
        bf.stored().iter().any(|p| p.metric_name == last),
        "the newest segment was delivered"
    );
    let st = admin_status(&f).await;
    assert_eq!(st["ledger"]["dropped"]["spool_lost"], lost, "{st:#}");
    let metrics = admin_get(&f, "/metrics").await;
    let series =
        format!("blueflood_forward_datapoints_dropped_total{{reason=\"spool_lost\"}} {lost}");
    assert!(
        metrics.lines().any(|l| l == series),
        "/metrics lacks {series:?}"
    );
    f.stop().await;
}
