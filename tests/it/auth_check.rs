//! `blueflood-forward check` as an operator runs it (a child process) against the Keystone
//! and Blueflood doubles: every step printed with ok/FAILED and the reason, the check
//! datapoint stored under the prefix, exit 0 only when everything passed.

use crate::support;

use std::time::Duration;

use support::blueflood::BluefloodDouble;
use support::keystone::KeystoneDouble;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_and_stores_its_datapoint() {
    let ks = KeystoneDouble::start("alice", "s3cret-api-key").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("apiKey");
    std::fs::write(&key, "s3cret-api-key\n").unwrap();
    let out = support::run_binary(vec![
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
    let t = support::output_text(&out);
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
    let out = support::run_binary(vec![
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
    let t = support::output_text(&out);
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
    let out = support::run_binary(base(&["--no-send", "--auth-method", "v2-password"])).await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("skipped send: --no-send"), "{t}");
    assert!(t.contains("v2-password"), "{t}");

    let out = support::run_binary(base(&["--request-timeout", "2"])).await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAILED  send:") && t.contains("did not answer"),
        "{t}"
    );

    // A configuration error is a failed first step (and the usual exit code 64).
    let out = support::run_binary(vec!["check".into(), "--auth-method".into(), "v4".into()]).await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(
        t.contains("FAILED  config:") && t.contains("auth_method"),
        "{t}"
    );
    // `check` may come after the flags, as in any run's command line.
    let out = support::run_binary(vec!["--auth-method".into(), "v4".into(), "check".into()]).await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(
        t.contains("FAILED  config:") && t.contains("check FAILED"),
        "{t}"
    );
    // Not a check: only the message on stderr, nothing on stdout.
    let out = support::run_binary(vec!["--auth-method".into(), "v4".into()]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "{}", support::output_text(&out));
}

/// Userinfo in a URL is a password: `check` shows where it connects, never who as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_never_shows_a_password_from_a_url() {
    let ks = KeystoneDouble::start("alice", "k").await;
    let bf = BluefloodDouble::start().await;
    let with_userinfo = |url: String, who: &str| url.replacen("://", &format!("://{who}@"), 1);
    let out = support::run_binary(vec![
        "check".into(),
        "-b".into(),
        with_userinfo(bf.url(), "bfuser:bf-url-PASSWORD"),
        "-u".into(),
        "alice".into(),
        "-k".into(),
        "k".into(),
        "--auth-url".into(),
        with_userinfo(ks.url(), "ksuser:ks-url-PASSWORD"),
    ])
    .await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains("PASSWORD"), "{t}");
    assert!(
        t.contains("://***@"),
        "where it connects is still shown: {t}"
    );

    // Refused before anything runs (exit 64), and the message still names the key.
    let out = support::run_binary(vec![
        "check".into(),
        "-b".into(),
        "ftp://bfuser:bf-url-PASSWORD@blueflood.example:19000".into(),
    ])
    .await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(t.contains("\"blueflood\""), "{t}");
    assert!(!t.contains("PASSWORD"), "{t}");
}

/// A server that answers every request with `status` and `body`, then closes.
async fn raw_http_server(status: &'static str, body: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The request is small; what matters is answering after it arrived.
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    url
}

/// What Blueflood (or whatever answers in its place) says reaches the operator's terminal
/// only with control characters escaped: no escape sequence, no forged result line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_escapes_control_characters_in_an_answer() {
    let url = raw_http_server(
        "400 Bad Request",
        b"\x1b[2J\x1b[1;1Hnope\r\nok      send: stored\ncheck passed\n\x07",
    )
    .await;
    let out = support::run_binary(vec!["check".into(), "-b".into(), url]).await;
    let t = support::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains('\x1b') && !stdout.contains('\x07'), "{t}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.contains(&"check passed"), "{t}");
    assert!(!lines.iter().any(|l| l.starts_with("ok      send")), "{t}");
    assert!(t.contains("FAILED  send:") && t.contains("nope"), "{t}");
    assert_eq!(lines.last(), Some(&"check FAILED"), "{t}");
}
