//! The admin port and the process's file descriptors under hostile load, through the real
//! binary (a child process on real sockets, some with a low `ulimit -n`): idle admin
//! connections cannot use up the descriptors the carbon listeners need; silent, half-sent,
//! trickled and idle keep-alive admin connections are closed by the server and counted; the
//! soft open-files limit is raised to the hard one at start; a carbon listener whose accept
//! fails for want of descriptors backs off, counts it and serves again once they are free.

use crate::reliability_child;
use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use reliability_child::{BIN, Child, n, spawn, spawn_command};
use support::blueflood::BluefloodDouble;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);

/// The forwarder under `sh`, which sets `limits` (`ulimit` arguments, e.g. `-n 256`) and then
/// execs it: same process, so the pid is the forwarder's.
fn under_ulimit(limits: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", &format!("ulimit {limits} && exec \"$0\" \"$@\""), BIN]);
    c
}

fn metric(m: &HashMap<String, f64>, series: &str) -> Option<u64> {
    m.get(&format!("blueflood_forward_{series}"))
        .map(|v| *v as u64)
}

/// Connects, giving up (None) after a while: a full accept queue drops SYNs.
async fn try_connect(addr: SocketAddr) -> Option<TcpStream> {
    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()
}

/// True once the server has closed `s` (EOF or reset), read for at most `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer to what was sent: keep reading until the server closes.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// GETs `path` until it answers 200 (a refused connection is retried), failing after `WAIT`.
async fn get_eventually(c: &Child, path: &str) -> String {
    let end = Instant::now() + WAIT;
    loop {
        match reliability_child::http_get(c.admin, path).await {
            Ok(body) => return body,
            Err(e) if Instant::now() > end => panic!(
                "{}: GET {path} never answered 200: {e}; log:\n{}",
                c.case,
                c.log_tail(20)
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn pickle_points(stem: &str, k: usize) -> Vec<u8> {
    let ts = (support::now_ms() / 1000) as f64;
    let names: Vec<String> = (0..k).map(|i| format!("{stem}.m{i}")).collect();
    let pts: Vec<(&str, f64, f64)> = names.iter().map(|s| (s.as_str(), ts, 1.0)).collect();
    support::pickle_frame(&pts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_cannot_starve_the_carbon_listeners() {
    let case = "400 idle admin connections under ulimit -n 256";
    let bf = BluefloodDouble::start().await;
    let c = spawn_command(case, under_ulimit("-n 256"), &bf.url(), &[]);
    // More idle admin connections than the process has descriptors.
    let mut idle = Vec::new();
    for _ in 0..400 {
        if let Some(s) = try_connect(c.admin).await {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 300, "{case}: only {} connected", idle.len());
    // Those over the limit were told so and closed (the newest ones are).
    let mut told = false;
    for s in idle.iter_mut().rev() {
        let mut buf = [0u8; 64];
        if let Ok(Ok(got)) =
            tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
            && buf[..got].starts_with(b"HTTP/1.1 503")
        {
            told = true;
            break;
        }
    }
    assert!(told, "{case}: no refused connection was answered 503");
    // A carbon sender is still served while they are held.
    support::send_tcp(c.pickle, &pickle_points("starve", 100)).await;
    assert!(
        bf.wait_for_stored(100, WAIT).await,
        "{case}: {} of 100 pickle points delivered while the admin port was flooded; log:\n{}",
        bf.stored_count(),
        c.log_tail(20)
    );
    // The probes answer again once the idle connections time out (the attacker's sockets are
    // still open on this side).
    let live = get_eventually(&c, "/livez").await;
    assert!(live.contains("ok"), "{case}: /livez {live}");
    let s: serde_json::Value =
        serde_json::from_str(&get_eventually(&c, "/status").await).expect("status json");
    let admin = &s["admin"]["connections"];
    assert!(n(&admin["refused"]) > 0, "{case}: refusals counted: {s:#}");
    assert!(
        n(&admin["timed_out"]) > 0,
        "{case}: timeouts counted: {s:#}"
    );
    assert_eq!(s["ledger"]["balanced"], true, "{case}: {s:#}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_admin_connections_are_closed_by_the_server() {
    let case = "silent, half-sent, trickled and idle keep-alive admin connections";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let silent = TcpStream::connect(c.admin).await.expect("connect");
    let mut half = TcpStream::connect(c.admin).await.expect("connect");
    half.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut kept = TcpStream::connect(c.admin).await.expect("connect");
    kept.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 1024];
    let got = kept.read(&mut answer).await.expect("answer");
    assert!(
        answer[..got].starts_with(b"HTTP/1.1 200"),
        "{case}: {}",
        String::from_utf8_lossy(&answer[..got])
    );
    // One header byte every second, for as long as the server keeps the connection.
    let mut trickle = TcpStream::connect(c.admin).await.expect("connect");
    let mut trickled_closed = false;
    let end = Instant::now() + WAIT;
    let header = b"GET /status HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain([b'a'; 4096].iter());
    for byte in header {
        if trickle.write_all(&[*byte]).await.is_err()
            || closed_by_server(&mut trickle, Duration::from_secs(1)).await
        {
            trickled_closed = true;
            break;
        }
        if Instant::now() > end {
            break;
        }
    }
    assert!(
        trickled_closed,
        "{case}: a header trickled one byte a second is still being read after {WAIT:?}"
    );
    for (what, mut s) in [
        ("silent", silent),
        ("half-sent", half),
        ("idle keep-alive", kept),
    ] {
        assert!(
            closed_by_server(&mut s, WAIT).await,
            "{case}: the {what} connection is still open after {WAIT:?}"
        );
    }
    let s = c.status().await;
    assert!(
        n(&s["admin"]["connections"]["timed_out"]) >= 4,
        "{case}: header timeouts counted: {s:#}"
    );
    let m = c.metrics().await;
    assert!(
        metric(&m, "admin_connections_timed_out_total") >= Some(4),
        "{case}: /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_files_limit_is_raised_to_the_hard_limit_at_start() {
    let case = "soft limit 256";
    let bf = BluefloodDouble::start().await;
    let c = spawn_command(case, under_ulimit("-S -n 256"), &bf.url(), &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", c.pid())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    assert_eq!(fields[3], fields[4], "{case}: {line}");
    assert!(
        c.log_lines()
            .iter()
            .any(|l| l.contains("open files limit") && l.contains("256")),
        "{case}: the raise is logged with the old value; log:\n{}",
        c.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carbon_accept_failing_for_want_of_descriptors_is_counted_and_recovers() {
    let case = "120 idle line connections under ulimit -n 96";
    let bf = BluefloodDouble::start().await;
    let c = spawn_command(case, under_ulimit("-n 96"), &bf.url(), &[]);
    let mut idle = Vec::new();
    for _ in 0..120 {
        if let Some(s) = try_connect(c.line).await {
            idle.push(s);
        }
    }
    // Long enough for the listener to meet the limit more than once (it backs off in between).
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(idle);
    // Once the descriptors are free, the listener serves again.
    support::send_tcp(c.pickle, &pickle_points("after", 50)).await;
    assert!(
        bf.wait_for_stored(50, WAIT).await,
        "{case}: not served after the descriptors came back; log:\n{}",
        c.log_tail(20)
    );
    let m = c.metrics().await;
    assert!(
        metric(&m, "accept_errors_total{listener=\"line_tcp\"}") > Some(0),
        "{case}: accept errors counted in /metrics: {:?}",
        m.iter()
            .filter(|(k, _)| k.contains("accept"))
            .collect::<Vec<_>>()
    );
    assert!(
        c.log_lines().iter().any(|l| l.contains("accept failed")),
        "{case}: accept errors logged"
    );
    let s = c.settle(50, WAIT).await;
    assert_eq!(s["ledger"]["balanced"], true, "{case}: {s:#}");
}
