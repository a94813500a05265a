//! Interop with the real thing: Graphite's own `carbon-relay` (from PyPI, in a virtualenv made by
//! `scripts/interop-carbon.sh`) relaying plaintext lines and Python-written pickles (received
//! on its line and pickle ports) to the forwarder over the pickle protocol; and pickles written
//! by this machine's Python 3 `pickle.dumps` at every protocol sent straight to the forwarder.
//! Every datapoint must reach the Blueflood double with the right name (prefix applied), value
//! and integer-millisecond timestamp.
//!
//! The carbon-relay test needs the virtualenv: `.cache/carbon-venv` under the crate, or the
//! directory in `BFF_CARBON_VENV`. Without it the test passes without running and prints a
//! `SKIPPED ...` line past cargo's output capture, unless it runs in CI (`CI=true`) or with
//! `BFF_INTEROP_REQUIRED=1` (set by the script), when it fails. The pickle test needs
//! `python3` on the PATH (or `BFF_PYTHON`) under the same rule.

use crate::harness;
use crate::support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blueflood_forward::config::settings::Protocol;
use harness::{Forwarder, settings};
use support::blueflood::{BluefloodDouble, StoredPoint};

const WAIT: Duration = Duration::from_secs(60);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Kills the child on drop, so a failing assertion never leaves a carbon-relay behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Expected {
    name: String,
    value: f64,
    ts_ms: i64,
}

/// Compares what the double stored with what was expected: every expected point exactly once
/// (name with prefix, value, millisecond timestamp) and nothing else.
fn compare(case: &str, stored: &[StoredPoint], expected: &[Expected]) {
    let mut by_key: HashMap<(&str, i64), &StoredPoint> = HashMap::new();
    for p in stored {
        by_key.insert((p.metric_name.as_str(), p.collection_time), p);
    }
    let mut problems = Vec::new();
    for e in expected {
        match by_key.remove(&(e.name.as_str(), e.ts_ms)) {
            None => problems.push(format!("missing {} @ {}", e.name, e.ts_ms)),
            Some(p) if p.metric_value != e.value => problems.push(format!(
                "{} @ {}: value {} stored, {} sent",
                e.name, e.ts_ms, p.metric_value, e.value
            )),
            Some(_) => {}
        }
    }
    for (k, _) in by_key {
        problems.push(format!("unexpected {} @ {}", k.0, k.1));
    }
    assert!(
        problems.is_empty(),
        "{case}: {} of {} datapoints wrong: {:?}",
        problems.len(),
        expected.len(),
        &problems[..problems.len().min(20)]
    );
}

fn now_s() -> i64 {
    support::now_ms() / 1000
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BFF_PYTHON") {
        return Some(p.into());
    }
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| "python3".into())
}

/// Runs `scripts/interop_pickles.py` with `py` into `dir`; returns, per protocol, the stream
/// and the datapoints expected at the double (prefix `pre.` applied).
fn python_pickles(py: &Path, dir: &Path) -> Vec<(u32, Vec<u8>, Vec<Expected>)> {
    let out = Command::new(py)
        .arg(manifest().join("scripts/interop_pickles.py"))
        .arg(dir)
        .arg(now_s().to_string())
        .output()
        .expect("run scripts/interop_pickles.py");
    assert!(
        out.status.success(),
        "interop_pickles.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut streams = Vec::new();
    for proto in 0..=9 {
        let bin = dir.join(format!("proto{proto}.bin"));
        if !bin.exists() {
            break;
        }
        let expected = std::fs::read_to_string(dir.join(format!("proto{proto}.expected.jsonl")))
            .expect("expected")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                Expected {
                    name: format!("pre.{}", v["metricName"].as_str().expect("name")),
                    value: v["value"].as_f64().expect("value"),
                    ts_ms: (v["timestamp"].as_f64().expect("ts") * 1000.0) as i64,
                }
            })
            .collect();
        streams.push((proto, std::fs::read(&bin).expect("stream"), expected));
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python3_pickle_dumps_at_every_protocol_is_delivered_exactly() {
    let Some(py) = python() else {
        return support::prerequisite_missing(
            "python3_pickle_dumps_at_every_protocol_is_delivered_exactly",
            "no python3 on the PATH (set BFF_PYTHON)",
        );
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let streams = python_pickles(&py, dir.path());
    let protocols = streams.len();
    for (proto, stream, expected) in streams {
        let case = format!("Python 3 pickle.dumps protocol {proto}");
        let bf = BluefloodDouble::start().await;
        let f = Forwarder::start(settings(&bf.url())).await;
        support::send_tcp(f.addr(Protocol::Pickle), &stream).await;
        let s = f.settle(expected.len() as u64, WAIT).await;
        assert_eq!(
            s.delivered,
            expected.len() as u64,
            "{case}: not every datapoint delivered: {s:#?}"
        );
        compare(&case, &bf.stored(), &expected);
        f.stop().await;
    }
    assert!(protocols >= 6, "expected protocols 0..=5, got {protocols}");
}

fn carbon_venv() -> Option<PathBuf> {
    let dir = std::env::var_os("BFF_CARBON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join(".cache/carbon-venv"));
    dir.join("bin/carbon-relay.py").exists().then_some(dir)
}

/// Writes a minimal carbon.conf (+ storage-schemas.conf, which carbon insists on) for a relay
/// that listens for lines on `line_port` and relays pickles to `dest`.
fn write_carbon_conf(root: &Path, line_port: u16, pickle_port: u16, dest: SocketAddr) -> PathBuf {
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).expect("conf dir");
    std::fs::create_dir_all(root.join("storage/log")).expect("log dir");
    let r = root.display();
    std::fs::write(
        conf.join("carbon.conf"),
        format!(
            "[cache]\n\
             STORAGE_DIR = {r}/storage\n\
             LOCAL_DATA_DIR = {r}/storage/whisper\n\
             LOG_DIR = {r}/storage/log\n\
             PID_DIR = {r}/storage\n\
             \n\
             [relay]\n\
             LINE_RECEIVER_INTERFACE = 127.0.0.1\n\
             LINE_RECEIVER_PORT = {line_port}\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
             PICKLE_RECEIVER_PORT = {pickle_port}\n\
             ENABLE_UDP_LISTENER = False\n\
             RELAY_METHOD = consistent-hashing\n\
             REPLICATION_FACTOR = 1\n\
             DESTINATIONS = {}:{}:a\n\
             DESTINATION_PROTOCOL = pickle\n\
             MAX_QUEUE_SIZE = 100000\n\
             MAX_DATAPOINTS_PER_MESSAGE = 500\n\
             USE_FLOW_CONTROL = True\n\
             CARBON_METRIC_INTERVAL = 0\n\
             LOG_LISTENER_CONN_SUCCESS = False\n",
            dest.ip(),
            dest.port()
        ),
    )
    .expect("carbon.conf");
    std::fs::write(
        conf.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 60s:1d\n",
    )
    .expect("storage-schemas.conf");
    conf.join("carbon.conf")
}

/// Waits (bounded) until something accepts connections on `port`.
async fn wait_listening(port: u16, relay: &mut KillOnDrop, log: &Path) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = relay.0.try_wait() {
            panic!(
                "carbon-relay exited ({status}) before listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < end,
            "carbon-relay not listening on {port} after 30 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_carbon_relay_relays_lines_and_python_pickles_to_blueflood_exactly() {
    let Some(venv) = carbon_venv() else {
        return support::prerequisite_missing(
            "real_carbon_relay_relays_lines_and_python_pickles_to_blueflood_exactly",
            "no carbon virtualenv (.cache/carbon-venv or BFF_CARBON_VENV): run scripts/interop-carbon.sh",
        );
    };
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(settings(&bf.url())).await;
    let root = tempfile::tempdir().expect("tempdir");
    let line_port = free_port();
    let pickle_port = free_port();
    let conf = write_carbon_conf(
        root.path(),
        line_port,
        pickle_port,
        f.addr(Protocol::Pickle),
    );
    let log = root.path().join("relay.out");
    let out = std::fs::File::create(&log).expect("log file");
    let mut relay = KillOnDrop(
        Command::new(venv.join("bin/python"))
            .arg(venv.join("bin/carbon-relay.py"))
            .arg(format!("--config={}", conf.display()))
            .args(["--nodaemon", "start"])
            .env("GRAPHITE_ROOT", root.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn carbon-relay"),
    );
    wait_listening(line_port, &mut relay, &log).await;

    // 3000 lines in the forms carbon clients write: floats, ints, exponents, negatives,
    // timestamps spread over the last 10 minutes; sent over 3 connections.
    let now = now_s();
    let n = 3000;
    let mut expected = Vec::with_capacity(n);
    let mut chunks = vec![String::new(), String::new(), String::new()];
    for i in 0..n {
        let name = format!("relay.line.c{}.m{i}", i % 3);
        let text = match i % 4 {
            0 => format!("{i}"),
            1 => format!("{i}.25"),
            2 => format!("-{i}e-3"),
            _ => format!("{i}E+2"),
        };
        let ts = now - (i as i64 % 600);
        chunks[i % 3].push_str(&format!("{name} {text} {ts}\n"));
        expected.push(Expected {
            name: format!("pre.{name}"),
            // What Python's float() and Rust's parse agree the text means.
            value: text.parse::<f64>().expect("value"),
            ts_ms: ts * 1000,
        });
    }
    for chunk in &chunks {
        support::send_tcp(
            SocketAddr::from(([127, 0, 0, 1], line_port)),
            chunk.as_bytes(),
        )
        .await;
    }
    // Pickles from Python's own pickle.dumps (every protocol) into the relay's pickle
    // receiver: carbon-relay unpickles them and pickles them again for the forwarder.
    let pydir = tempfile::tempdir().expect("tempdir");
    for (_, stream, exp) in python_pickles(&venv.join("bin/python"), pydir.path()) {
        support::send_tcp(SocketAddr::from(([127, 0, 0, 1], pickle_port)), &stream).await;
        expected.extend(exp);
    }
    let n = expected.len();
    if !bf.wait_for_stored(n, WAIT).await {
        panic!(
            "carbon-relay interop: {} of {n} datapoints stored after {WAIT:?}; ledger {:#?}; relay log:\n{}",
            bf.stored_count(),
            f.snapshot(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let s = f.settle(n as u64, WAIT).await;
    assert_eq!(s.received_pickle, n as u64, "carbon-relay interop: {s:#?}");
    assert_eq!(s.dropped_total(), 0, "carbon-relay interop: {s:#?}");
    compare("carbon-relay interop", &bf.stored(), &expected);
    drop(relay);
    f.stop().await;
}

/// The skip rule itself, on this very binary: without the virtualenv the relay test says
/// `SKIPPED` on stderr past the harness's capture and passes; in CI it fails.
#[test]
fn a_missing_prerequisite_is_shown_and_fails_in_ci() {
    const TEST: &str = "real_carbon_relay_relays_lines_and_python_pickles_to_blueflood_exactly";
    let run = |ci: Option<&str>, skip: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        // Test names in the one test binary are module paths.
        let exact = format!("interop_carbon::{TEST}");
        cmd.args(["--exact", &exact, "--test-threads=1"])
            .env("BFF_CARBON_VENV", "/nonexistent/carbon-venv")
            .env_remove("BFF_INTEROP_REQUIRED")
            .env_remove("CI")
            .env_remove("BFF_SKIP");
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        if let Some(skip) = skip {
            cmd.env("BFF_SKIP", skip);
        }
        let out = cmd.output().expect("run the test binary");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (passed, text) = run(None, None);
    assert!(passed, "{text}");
    assert!(
        text.contains(&format!("SKIPPED {TEST}: no carbon virtualenv")),
        "the skip is not shown: {text}"
    );
    for ci in ["true", "1"] {
        let (passed, text) = run(Some(ci), None);
        assert!(!passed, "CI={ci}: a missing prerequisite passed: {text}");
        assert!(text.contains("prerequisite missing"), "CI={ci}: {text}");
    }
    // A run that names the test in BFF_SKIP leaves it to another job, even in CI.
    let (passed, text) = run(Some("true"), Some(&format!("image_e2e,{TEST}")));
    assert!(passed, "BFF_SKIP: {text}");
    assert!(
        text.contains(&format!("SKIPPED {TEST}")),
        "BFF_SKIP: {text}"
    );
    let (passed, _) = run(Some("true"), Some("image_e2e"));
    assert!(
        !passed,
        "BFF_SKIP naming another test must not skip this one"
    );
}
