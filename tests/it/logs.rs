//! What the binary logs about bad input (a child process on real sockets, JSON logs): warnings
//! are rate-limited per kind of event, so one kind, however frequent, never hides another.

use crate::reliability_child;
use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reliability_child::{Child, spawn};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(20);

/// The `reason` of every log line whose message is `message`.
fn reasons(c: &Child, message: &str) -> BTreeSet<String> {
    c.log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter_map(|v| v["reason"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (bounded) until lines with `message` name every one of `wanted`.
async fn wait_logged(c: &Child, message: &str, wanted: &[&str]) {
    let wanted: BTreeSet<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
    let end = Instant::now() + WAIT;
    loop {
        let got = reasons(c, message);
        if wanted.is_subset(&got) {
            return;
        }
        assert!(
            Instant::now() < end,
            "{}: {message:?} logged for {got:?}, not for all of {wanted:?} after {WAIT:?}; log tail:\n{}",
            c.case,
            c.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `text` on its own connection and waits until the forwarder has counted `reason`.
async fn send_and_count(c: &Child, text: &str, section: &str, reason: &str) {
    support::send_tcp(c.line, text.as_bytes()).await;
    c.wait_status(WAIT, &format!("{section}.{reason} counted"), |s| {
        s["ledger"][section][reason].as_u64() >= Some(1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_drop_reason_logs_its_first_line_whatever_came_before() {
    let bf = BluefloodDouble::start().await;
    let c = spawn("nan, then out_of_window, then decode_error", &bf.url(), &[]);
    let ts = support::now_ms() / 1000;
    // All three within the 10 s period of the first: each must still log a line.
    send_and_count(&c, &format!("a.nan nan {ts}\n"), "dropped", "nan").await;
    send_and_count(&c, "a.old 1 100\n", "dropped", "out_of_window").await;
    send_and_count(&c, &format!("a.bad one {ts}\n"), "dropped", "decode_error").await;
    wait_logged(
        &c,
        "dropped datapoints",
        &["nan", "out_of_window", "decode_error"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_input_logs_its_first_line_whatever_came_before() {
    let bf = BluefloodDouble::start().await;
    let c = spawn(
        "line_too_long, then truncated_frame",
        &bf.url(),
        &["--max-line-bytes", "64"],
    );
    send_and_count(
        &c,
        &format!("{}\n", "x".repeat(100)),
        "bad_input",
        "line_too_long",
    )
    .await;
    // A pickle frame cut short by the end of its connection.
    support::send_tcp(c.pickle, &[0, 0, 0, 50, 0x80]).await;
    c.wait_status(WAIT, "truncated_frame counted", |s| {
        s["ledger"]["bad_input"]["truncated_frame"].as_u64() >= Some(1)
    })
    .await;
    wait_logged(&c, "bad input", &["line_too_long", "truncated_frame"]).await;
}
