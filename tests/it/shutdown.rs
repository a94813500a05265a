//! Stopping the binary (a child process, real signals): a second SIGTERM or SIGINT during the
//! drain stops it at once, with what was still undelivered counted (`shutdown_timeout`, or
//! spooled when there is a spool) and logged, and the exit code of a process killed by that
//! signal. (The drain itself and its deadline: `cli.rs`, `reliability_faults.rs`; the delay
//! before the drain, `--shutdown-delay`: `shutdown/delay.rs`.)

mod delay;

use crate::reliability_child;
use crate::support;

use std::process::Command;
use std::time::Duration;

use reliability_child::{Child, line_load, n, spawn};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(30);

fn signal(c: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &c.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "{}: kill -{name} failed", c.case);
}

/// Sends `points` lines to `c` (Blueflood down) and signals it once: returns when `c` is
/// draining, with every point received and none delivered.
async fn draining_with_undeliverable_points(c: &Child, points: usize, first: &str) {
    let sent = line_load(c.line, "sig", 1, points, Duration::ZERO).await;
    c.wait_status(WAIT, "every point received and a retry", |s| {
        n(&s["ledger"]["received_total"]) == sent && n(&s["delivery"]["retries"]) >= 1
    })
    .await;
    signal(c, first);
    c.wait_status(WAIT, "draining", |s| s["phase"] == "draining")
        .await;
}

/// The fields of the log line with `message`, if any.
fn logged(c: &Child, message: &str) -> Option<serde_json::Value> {
    c.log_lines().iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["message"] == message).then_some(v)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_drain_exits_at_once_counting_what_is_lost() {
    for (first, second, code) in [
        ("TERM", "TERM", 143),
        ("TERM", "INT", 130),
        ("INT", "INT", 130),
    ] {
        let bf = BluefloodDouble::start().await;
        bf.set_down(true);
        let case = format!("SIG{first} then SIG{second}, Blueflood down");
        // Without the second signal the drain would go on for an hour.
        let mut c = spawn(&case, &bf.url(), &["--shutdown-timeout", "3600"]);
        draining_with_undeliverable_points(&c, 200, first).await;
        signal(&c, second);
        let (status, stopped) = c.wait_exit(WAIT).await;
        assert_eq!(status, Some(code), "{case}; log:\n{}", c.log_tail(20));
        let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
        assert_eq!(
            (n(&stopped["delivered"]), n(&stopped["dropped"])),
            (0, 200),
            "{case}: {stopped}"
        );
        let cut = logged(&c, "second signal: stopped without finishing the drain")
            .unwrap_or_else(|| panic!("{case}: no line for the cut; log:\n{}", c.log_tail(20)));
        assert_eq!(n(&cut["lost"]), 200, "{case}: {cut}");
        assert_eq!(cut["signal"], format!("SIG{second}"), "{case}: {cut}");
    }
}

/// A "Blueflood" that accepts connections and reads requests but never answers: every request
/// stays in flight. Returns its URL; it lives as long as the runtime.
async fn never_answers() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut stream, &mut sink).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_spool_a_second_signal_keeps_what_is_in_flight_for_the_next_start() {
    let hung = never_answers().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().display().to_string();
    let case = "SIGTERM twice, requests in flight, spool";
    let mut c = spawn(
        case,
        &hung,
        &[
            "--shutdown-timeout",
            "3600",
            "--request-timeout",
            "3600",
            "--spool-dir",
            &spool,
        ],
    );
    let sent = line_load(c.line, "sig", 1, 200, Duration::ZERO).await;
    c.wait_status(WAIT, "every point in flight", |s| {
        n(&s["ledger"]["in_flight"]) == sent
    })
    .await;
    signal(&c, "TERM");
    c.wait_status(WAIT, "draining", |s| s["phase"] == "draining")
        .await;
    signal(&c, "TERM");
    let (status, stopped) = c.wait_exit(WAIT).await;
    assert_eq!(status, Some(143), "{case}; log:\n{}", c.log_tail(20));
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
    assert_eq!(n(&stopped["dropped"]), 0, "{case}: {stopped}");
    let cut = logged(&c, "second signal: stopped without finishing the drain")
        .unwrap_or_else(|| panic!("{case}: no line for the cut; log:\n{}", c.log_tail(20)));
    assert_eq!(n(&cut["lost"]), 0, "{case}: {cut}");

    // The next start finds them in the spool and delivers them.
    let bf = BluefloodDouble::start().await;
    let next = spawn("the next start", &bf.url(), &["--spool-dir", &spool]);
    let s = next
        .wait_status(WAIT, "the spooled points delivered", |s| {
            n(&s["ledger"]["delivered"]) == sent
        })
        .await;
    assert_eq!(n(&s["ledger"]["recovered"]), sent, "{s:#}");
}
