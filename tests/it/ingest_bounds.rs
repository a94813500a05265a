//! The carbon listeners' shared bounds through the running binary (a child process on real
//! sockets): the memory of incomplete frames across all connections (`partial_frame_bytes`),
//! the connection limit making room by closing the connection idle longest (and refusing only
//! when every connection is busy), and the ledger state of points decoded by a connection that
//! waits for room under `--buffer-policy block`.
//! Memory is read from `/proc/PID/status` of the child, with bounds far from both the attack
//! size and the expected use, so a loaded machine does not change the verdict.

use crate::reliability_child;
use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reliability_child::{Child, metric, n, spawn};
use support::blueflood::BluefloodDouble;
use support::{closed_by_server, now_whole_secs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// A field of `/proc/PID/status` in bytes (`VmHWM`: peak resident set; `VmRSS`: now).
fn proc_bytes(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        * 1024
}

/// Writes what it can (a connection the server closes makes the write fail, which is fine
/// here) and keeps the connection open.
async fn write_and_hold(addr: SocketAddr, bytes: Arc<Vec<u8>>) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.write_all(&bytes).await;
    Some(s)
}

/// `--buffer-policy block` with a 64 KiB buffer and one delivery of at most 4096 points at a
/// time: with Blueflood down, a sender soon waits for room. `extra` is added.
fn spawn_blocking(case: &str, bf: &BluefloodDouble, extra: &[&str]) -> Child {
    let mut args = vec![
        "--buffer-policy",
        "block",
        "--buffer-bytes",
        "64KiB",
        "--concurrency",
        "1",
        "--limit",
        "4096",
    ];
    args.extend_from_slice(extra);
    spawn(case, &bf.url(), &args)
}

/// Sends `k` line points and `k` pickle points, each on a connection of its own, and waits
/// until the double stores them.
async fn good_sender_served(c: &Child, bf: &BluefloodDouble, stem: &str, k: usize) {
    let before = bf.stored_count();
    let ts = now_whole_secs();
    let text = support::numbered_lines(stem, k, ts);
    let names: Vec<String> = (0..k).map(|i| format!("{stem}.p{i}")).collect();
    let pts: Vec<(&str, f64, f64)> = names.iter().map(|s| (s.as_str(), ts, 1.0)).collect();
    for (addr, bytes) in [
        (c.line, text.into_bytes()),
        (c.pickle, support::pickle_frame(&pts)),
    ] {
        // Not `support::send_tcp`: before room is made, the server closes the connection at
        // once and the write may fail; the wait below is what tells.
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(&bytes).await;
            let _ = s.shutdown().await;
        }
    }
    assert!(
        bf.wait_for_stored(before + 2 * k, WAIT).await,
        "{}: good sender not served ({} of {} stored); /status: {:#}\nlog:\n{}",
        c.case,
        bf.stored_count() - before,
        2 * k,
        c.status().await,
        c.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_frames_share_one_bounded_budget() {
    let case = "300 connections each 1 byte short of a 1 MiB pickle frame (defaults)";
    const CONNS: u64 = 300;
    // Header announcing 1 MiB, then all of it but the last byte.
    const FRAME: usize = 1 << 20;
    let mut attack = (FRAME as u32).to_be_bytes().to_vec();
    attack.resize(4 + FRAME - 1, b'x');
    let held_each = attack.len() as u64;
    let attack = Arc::new(attack);
    // The attack sends 300 MiB; the default budget is 64 MiB. Far from both: what the
    // process needs besides the budget is tens of MiB, and a loaded machine only slows the
    // attack down, which lowers the peak.
    let bound = CONNS * MIB * 2 / 3;

    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let pid = c.pid();
    let start_hwm = proc_bytes(pid, "VmHWM");
    let writers: Vec<_> = (0..CONNS)
        .map(|_| tokio::spawn(write_and_hold(c.pickle, attack.clone())))
        .collect();
    let mut held_conns = Vec::new();
    for w in writers {
        if let Some(s) = w.await.expect("writer") {
            held_conns.push(s);
        }
    }
    // At rest when every attacking connection was either closed for the budget or read to its
    // last byte; fail as soon as the process grows past the bound.
    let end = Instant::now() + WAIT;
    let s = loop {
        let hwm = proc_bytes(pid, "VmHWM");
        assert!(
            hwm < bound,
            "{case}: peak RSS {} MiB, bound {} MiB (started at {} MiB); log:\n{}",
            hwm / MIB,
            bound / MIB,
            start_hwm / MIB,
            c.log_tail(10)
        );
        let s = c.status().await;
        let conn = &s["connections"];
        let (open, closed) = (n(&conn["open"]), n(&conn["partial_frame_closed"]));
        if closed > 0
            && open + closed == CONNS
            && n(&conn["partial_frame_bytes"]) == open * held_each
        {
            break s;
        }
        assert!(
            Instant::now() < end,
            "{case}: not at rest after {WAIT:?}; /status: {s:#}\nlog:\n{}",
            c.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hwm = proc_bytes(pid, "VmHWM");
    let conn = &s["connections"];
    let limit = n(&conn["partial_frame_limit_bytes"]);
    assert_eq!(limit, 64 * MIB, "{case}: default budget; {s:#}");
    assert!(
        n(&conn["partial_frame_bytes"]) <= limit,
        "{case}: held above the budget; {s:#}"
    );
    eprintln!(
        "{case}: peak RSS {} MiB (started at {} MiB, now {} MiB); {} connections closed for the budget, {} held",
        hwm / MIB,
        start_hwm / MIB,
        proc_bytes(pid, "VmRSS") / MIB,
        n(&conn["partial_frame_closed"]),
        n(&conn["open"]),
    );
    // A well-behaved sender is served while the survivors still hold their frames.
    good_sender_served(&c, &bf, "good", 5).await;
    let mets = c.metrics().await;
    assert!(
        metric(&mets, "connections_partial_frame_closed_total") > 0,
        "{case}: closures counted in /metrics"
    );
    assert_eq!(metric(&mets, "partial_frames_limit_bytes"), 64 * MIB);
    drop(held_conns);
    c.wait_status(WAIT, "attackers gone, nothing held", |s| {
        n(&s["connections"]["open"]) == 0 && n(&s["connections"]["partial_frame_bytes"]) == 0
    })
    .await;
    c.close_books(10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_with_data_makes_room_by_closing_the_connection_idle_longest() {
    let case = "20 idle connections with --max-connections 20, then a real sender";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &["--max-connections", "20"]);
    // The oldest first, on its own, so that it is the one idle longest.
    let mut conns = vec![TcpStream::connect(c.line).await.expect("connect")];
    c.wait_status(WAIT, "1 open", |s| n(&s["connections"]["open"]) == 1)
        .await;
    for i in 1..20 {
        let addr = if i % 2 == 0 { c.line } else { c.pickle };
        conns.push(TcpStream::connect(addr).await.expect("connect"));
    }
    c.wait_status(WAIT, "20 open", |s| n(&s["connections"]["open"]) == 20)
        .await;
    // The line sender makes room; the pickle sender too, unless the line sender's slot was
    // already free again (it shuts down after writing), so one or two evictions.
    good_sender_served(&c, &bf, "good", 5).await;
    let s = c.status().await;
    let evicted = n(&s["connections"]["idle_evicted"]);
    assert!(
        (1..=2).contains(&evicted),
        "{case}: one idle connection closed per sender that needed room; {s:#}"
    );
    assert_eq!(n(&s["connections"]["refused"]), 0, "{case}: {s:#}");
    assert!(
        closed_by_server(&mut conns[0], WAIT).await,
        "{case}: the connection idle longest was not the one closed"
    );
    let mets = c.metrics().await;
    assert_eq!(metric(&mets, "connections_idle_evicted_total"), evicted);
    drop(conns);
    c.wait_status(WAIT, "no connection open", |s| {
        n(&s["connections"]["open"]) == 0
    })
    .await;
    c.close_books(10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_is_refused_only_when_no_connection_is_idle() {
    let case = "--max-connections 1, its connection waiting for room (block, Blueflood down)";
    const POINTS: u64 = 20_000;
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let c = spawn_blocking(case, &bf, &["--max-connections", "1"]);
    let ts = now_whole_secs();
    let text = support::numbered_lines("busy", POINTS as usize, ts);
    let addr = c.line;
    let sender = tokio::spawn(async move { support::send_tcp(addr, text.as_bytes()).await });
    c.wait_status(WAIT, "the one connection waiting for room", |s| {
        n(&s["ledger"]["waiting_for_room"]) > 0
    })
    .await;
    // Busy is not idle: the newcomer is refused, and the busy sender keeps its connection.
    let mut late = TcpStream::connect(c.pickle).await.expect("connect");
    assert!(
        closed_by_server(&mut late, WAIT).await,
        "{case}: the connection over the limit was not closed"
    );
    let s = c.status().await;
    assert_eq!(n(&s["connections"]["refused"]), 1, "{case}: {s:#}");
    assert_eq!(n(&s["connections"]["idle_evicted"]), 0, "{case}: {s:#}");
    bf.set_down(false);
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("sender done")
        .expect("sender");
    assert!(bf.wait_for_stored(POINTS as usize, WAIT).await);
    c.close_books(POINTS, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_waiting_for_room_under_block_keep_the_ledger_balanced() {
    let case = "--buffer-policy block, Blueflood down, a sender pushing more than the buffer";
    const POINTS: u64 = 20_000;
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let c = spawn_blocking(case, &bf, &[]);
    let ts = now_whole_secs();
    let text = support::numbered_lines("blk", POINTS as usize, ts);
    let addr = c.line;
    let sender = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(text.as_bytes()).await.expect("write");
        s.shutdown().await.expect("shutdown");
        // Held until the server has read everything and closes its side.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    // At rest: two status documents in a row with the same counts while the sender is held
    // back. The ledger must balance there; before any rest is seen it may not.
    let end = Instant::now() + WAIT;
    let mut last: Option<(u64, u64, u64)> = None;
    let mut at_rest_unbalanced = None;
    let s = loop {
        let s = c.status().await;
        let l = &s["ledger"];
        let now = (
            n(&l["received_total"]),
            n(&l["buffered"]),
            n(&l["in_flight"]),
        );
        if now.0 > 0 && now.0 < POINTS && last == Some(now) {
            if l["balanced"] == true {
                break s;
            }
            at_rest_unbalanced = Some(s.clone());
        }
        assert!(
            Instant::now() < end,
            "{case}: never balanced at rest in {WAIT:?}; at rest: {:#}\nlast: {s:#}",
            at_rest_unbalanced.unwrap_or_default()
        );
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let l = &s["ledger"];
    let waiting = n(&l["waiting_for_room"]);
    assert!(waiting > 0, "{case}: points waiting for room; {s:#}");
    let mets = c.metrics().await;
    assert_eq!(metric(&mets, "waiting_for_room_datapoints"), waiting);
    eprintln!(
        "{case}: at rest: received {}, waiting for room {waiting}, buffered {}, in flight {}",
        n(&l["received_total"]),
        n(&l["buffered"]),
        n(&l["in_flight"])
    );
    // Blueflood back: everything is delivered.
    bf.set_down(false);
    assert!(
        bf.wait_for_stored(POINTS as usize, WAIT).await,
        "{case}: {} of {POINTS} stored",
        bf.stored_count()
    );
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("sender done")
        .expect("sender");
    let s = c.close_books(POINTS, WAIT).await;
    assert_eq!(n(&s["ledger"]["delivered"]), POINTS, "{s:#}");
    assert_eq!(n(&s["ledger"]["waiting_for_room"]), 0, "{s:#}");
}
