//! `--shutdown-delay` (a child process, real signals, the Blueflood double): after the first
//! SIGTERM the forwarder is not ready (`/readyz` 503, phase `delaying`) but alive and still
//! takes data on every listener and delivers it; when the delay is over it drains and exits 0
//! having delivered everything. A second signal during the delay ends it at once and the drain
//! runs whole (exit 0); a third then cuts the drain as a second one does without a delay.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{WAIT, logged, signal};
use crate::reliability_child::{Child, line_load, n, spawn};
use crate::support::blueflood::BluefloodDouble;
use crate::support::carbon_pickle::pickle_frame;
use crate::support::{now_whole_secs, send_tcp};

/// The delay of the case that waits it out: it bounds the test's own steps after the signal
/// (a few sends and status reads), as `WAIT` bounds a wait; the test checks that they all
/// happened while the phase was still `delaying`, so a slower machine fails with that message
/// instead of passing without proof.
const DELAY: &str = "10";

/// GET `path` on the admin port: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("admin answer within WAIT")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_owned())
}

/// The messages of the log, in order.
fn messages(c: &Child) -> Vec<String> {
    c.log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_owned))
        .collect()
}

/// Signals `c` and waits until it says it is delaying; checks the probes say so too.
async fn delaying(c: &Child) {
    signal(c, "TERM");
    c.wait_status(WAIT, "delaying", |s| s["phase"] == "delaying")
        .await;
    let (code, body) = get(c.admin, "/readyz").await;
    assert_eq!(code, 503, "{}: /readyz during the delay: {body}", c.case);
    assert!(
        body.contains("shutdown_delay"),
        "{}: /readyz does not say why: {body}",
        c.case
    );
    let (code, body) = get(c.admin, "/livez").await;
    assert_eq!(code, 200, "{}: /livez during the delay: {body}", c.case);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_delay_it_is_not_ready_but_takes_and_delivers_data_then_drains() {
    let bf = BluefloodDouble::start().await;
    let case = "SIGTERM with --shutdown-delay";
    let mut c = spawn(case, &bf.url(), &["--shutdown-delay", DELAY]);
    let before = line_load(c.line, "before", 1, 100, Duration::ZERO).await;
    c.settle(before, WAIT).await;

    delaying(&c).await;
    // New connections and datagrams on every listener, as carbon-relay flushing its queue.
    let during = line_load(c.line, "during", 2, 100, Duration::ZERO).await;
    let ts = now_whole_secs();
    send_tcp(c.pickle, &pickle_frame(&[("during.pickle", ts, 1.0)])).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    udp.send_to(format!("during.udp 2 {ts}\n").as_bytes(), c.udp)
        .await
        .expect("send udp");
    let total = before + during + 2;
    assert!(
        bf.wait_for_stored(total as usize, WAIT).await,
        "{case}: Blueflood stored {} of {total}; log:\n{}",
        bf.stored_count(),
        c.log_tail(20)
    );
    let s = c.status().await;
    assert_eq!(
        s["phase"], "delaying",
        "{case}: the delay ended before the test's sends were delivered (a machine this slow \
         needs a longer DELAY): {s:#}"
    );

    // The delay runs out by itself; the drain follows and ends with everything delivered.
    let delay = Duration::from_secs(DELAY.parse().expect("DELAY is whole seconds"));
    let (code, stopped) = c.wait_exit(delay + WAIT).await;
    assert_eq!(code, Some(0), "{case}; log:\n{}", c.log_tail(20));
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
    assert_eq!(
        (n(&stopped["delivered"]), n(&stopped["dropped"])),
        (total, 0),
        "{case}: {stopped}"
    );
    assert_eq!(bf.stored_count() as u64, total, "{case}: points stored");
    let log = messages(&c);
    let at = |m: &str| {
        log.iter()
            .position(|l| l == m)
            .unwrap_or_else(|| panic!("{case}: no {m:?} line; log:\n{}", c.log_tail(20)))
    };
    assert!(
        at("shutting down after shutdown_delay: not ready, still listening and delivering")
            < at("shutdown_delay over")
            && at("shutdown_delay over") < at("shutting down: draining connections, then flushing"),
        "{case}: delay, then drain: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_delay_starts_the_drain_at_once() {
    let bf = BluefloodDouble::start().await;
    let case = "SIGTERM twice with --shutdown-delay 3600";
    // Without the second signal the delay would go on for an hour.
    let mut c = spawn(case, &bf.url(), &["--shutdown-delay", "3600"]);
    let sent = line_load(c.line, "second", 1, 100, Duration::ZERO).await;
    c.settle(sent, WAIT).await;
    delaying(&c).await;
    signal(&c, "TERM");
    let (code, stopped) = c.wait_exit(WAIT).await;
    // The drain ran whole: exit 0, not the 143 of a cut drain.
    assert_eq!(code, Some(0), "{case}; log:\n{}", c.log_tail(20));
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
    assert_eq!(
        (n(&stopped["delivered"]), n(&stopped["dropped"])),
        (sent, 0),
        "{case}: {stopped}"
    );
    let ended =
        logged(&c, "second signal: shutdown_delay ended, draining now").unwrap_or_else(|| {
            panic!(
                "{case}: no line for the delay's end; log:\n{}",
                c.log_tail(20)
            )
        });
    assert_eq!(ended["signal"], "SIGTERM", "{case}: {ended}");
    assert!(
        logged(&c, "shutdown_delay over").is_none(),
        "{case}: the delay ran out instead"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_signal_cuts_the_drain_that_a_second_one_started() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let case = "SIGTERM three times with --shutdown-delay 3600, Blueflood down";
    let mut c = spawn(
        case,
        &bf.url(),
        &["--shutdown-delay", "3600", "--shutdown-timeout", "3600"],
    );
    let sent = line_load(c.line, "third", 1, 200, Duration::ZERO).await;
    c.wait_status(WAIT, "every point received and a retry", |s| {
        n(&s["ledger"]["received_total"]) == sent && n(&s["delivery"]["retries"]) >= 1
    })
    .await;
    delaying(&c).await;
    signal(&c, "TERM");
    c.wait_status(WAIT, "draining", |s| s["phase"] == "draining")
        .await;
    signal(&c, "TERM");
    let (code, stopped) = c.wait_exit(WAIT).await;
    assert_eq!(code, Some(143), "{case}; log:\n{}", c.log_tail(20));
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
    assert_eq!(
        (n(&stopped["delivered"]), n(&stopped["dropped"])),
        (0, sent),
        "{case}: {stopped}"
    );
    let cut = logged(&c, "second signal: stopped without finishing the drain")
        .unwrap_or_else(|| panic!("{case}: no line for the cut; log:\n{}", c.log_tail(20)));
    assert_eq!(n(&cut["lost"]), sent, "{case}: {cut}");
}
