//! `blueflood-forward check` as an operator runs it (a child process) against the Keystone
//! and Blueflood doubles: every step printed with ok/FAILED and the reason, the check
//! datapoint stored under the prefix, exit 0 only when everything passed.

mod support;

use std::process::Output;
use std::time::Duration;

use support::blueflood::BluefloodDouble;
use support::keystone::KeystoneDouble;

const BIN: &str = env!("CARGO_BIN_EXE_blueflood-forward");

/// Runs the binary off the async runtime (the doubles live on it).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run binary")
    })
    .await
    .expect("join")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_and_stores_its_datapoint() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("apiKey");
    std::fs::write(&key, "s3cret-api-key\n").unwrap();
    let out = run(vec![
        "check".into(),
        "-b".into(),
        bf.url(),
        "-t".into(),
        "t9".into(),
        "-p".into(),
        "ops".into(),
        "-u".into(),
        "alice".into(),
        "--key-file".into(),
        key.display().to_string(),
        "--auth-url".into(),
        ks.url(),
    ])
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for line in [
        "ok      config:",
        "ok      credentials: read from file",
        "ok      authenticate:",
        "ok      send: 1 datapoint ops.blueflood_forward.check stored",
        "check passed",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    assert!(!t.contains("s3cret-api-key"), "{t}");
    assert!(bf.wait_for_stored(1, Duration::from_secs(5)).await);
    let p = &bf.stored()[0];
    assert_eq!(
        (p.tenant.as_str(), p.metric_name.as_str()),
        ("t9", "ops.blueflood_forward.check")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_refused_login_and_exits_1() {
    let ks = KeystoneDouble::start("alice", "the-right-key").await;
    let bf = BluefloodDouble::start().await;
    let out = run(vec![
        "-b".into(),
        bf.url(),
        "-u".into(),
        "alice".into(),
        "-k".into(),
        "a-wrong-key".into(),
        "--auth-url".into(),
        ks.url(),
        "check".into(),
    ])
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAILED  authenticate: identity service refused the credentials (HTTP 401)"),
        "{t}"
    );
    assert!(t.contains("FAILED  send: not attempted"), "{t}");
    assert!(t.contains("check FAILED"), "{t}");
    assert!(!t.contains("a-wrong-key"), "{t}");
    assert!(bf.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_no_send_and_unreachable_blueflood() {
    let ks = KeystoneDouble::start("alice", "k").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["check", "-b", &dead, "-u", "alice", "-k", "k", "--auth-url"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(ks.url());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let out = run(base(&["--no-send", "--auth-method", "v2-password"])).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("skipped send: --no-send"), "{t}");
    assert!(t.contains("v2-password"), "{t}");

    let out = run(base(&["--request-timeout", "2"])).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAILED  send:") && t.contains("did not answer"),
        "{t}"
    );

    // A configuration error is a failed first step (and the usual exit code 64).
    let out = run(vec!["check".into(), "--auth-method".into(), "v4".into()]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(
        t.contains("FAILED  config:") && t.contains("auth_method"),
        "{t}"
    );
}
