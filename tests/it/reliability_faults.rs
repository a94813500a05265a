//! Fault injection end to end: the forwarder binary as a child process, a steady bounded load
//! of line-protocol senders (each batch on a new connection), and the Blueflood (and Keystone)
//! doubles misbehaving. Every case ends with `/status` reporting a balanced ledger and the
//! double holding every datapoint sent, except the ones Blueflood rightly rejected, which are
//! counted as `rejected_by_blueflood`; then SIGTERM and exit 0.

use crate::reliability_child;
use crate::support;

use std::time::Duration;

use reliability_child::{Child, behind_keystone, line_load, n, spawn};
use support::blueflood::{BluefloodDouble, Fault};
use support::secrets::write_secret;

const WAIT: Duration = Duration::from_secs(60);

/// Settles, checks the ledger and the double against `sent` and `rejected`, stops the child.
async fn finish(c: Child, bf: &BluefloodDouble, sent: u64, rejected: u64) -> serde_json::Value {
    let case = c.case.clone();
    let s = c.settle(sent, WAIT).await;
    let l = &s["ledger"];
    assert_eq!(
        n(&l["received_total"]),
        sent,
        "{case}: received_total is not what was sent; /status {s:#}"
    );
    assert_eq!(
        n(&l["delivered"]),
        sent - rejected,
        "{case}: delivered; /status {s:#}"
    );
    assert_eq!(
        n(&l["dropped_total"]),
        rejected,
        "{case}: only Blueflood's rejections may be dropped; /status {s:#}"
    );
    assert_eq!(
        n(&l["dropped"]["rejected_by_blueflood"]),
        rejected,
        "{case}: rejected_by_blueflood; /status {s:#}"
    );
    assert_eq!(
        bf.stored_count() as u64,
        sent - rejected,
        "{case}: datapoints stored in the Blueflood double"
    );
    let stopped = c.stop(Duration::from_secs(30)).await;
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" log line"));
    assert_eq!(stopped["received"], sent, "{case}: final ledger {stopped}");
    assert_eq!(
        stopped["delivered"],
        sent - rejected,
        "{case}: final ledger {stopped}"
    );
    s
}

fn statuses(bf: &BluefloodDouble, status: u16) -> usize {
    bf.requests().iter().filter(|r| r.status == status).count()
}

/// One fault pattern under load: the faults queued before the load starts, then 30 batches of
/// 50 points, 30 ms apart. Returns the final status.
async fn queued_faults(case: &str, faults: Vec<Fault>, extra: &[&str]) -> BluefloodDouble {
    let bf = BluefloodDouble::start().await;
    for f in faults {
        bf.push_fault(f);
    }
    let c = spawn(case, &bf.url(), extra);
    let sent = line_load(c.line, "load", 30, 50, Duration::from_millis(30)).await;
    finish(c, &bf, sent, 0).await;
    bf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blueflood_down_60s_then_back_loses_nothing() {
    // The full minute the issue asks for, with load throughout (backoff capped at
    // --retry-max 0.5, data kept).
    let case = "Blueflood down 60 s then back";
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let c = spawn(case, &bf.url(), &[]);
    let load = tokio::spawn(line_load(
        c.line,
        "down",
        310,
        100,
        Duration::from_millis(200),
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = c.status().await;
    assert_eq!(bf.stored_count(), 0, "{case}: stored while down");
    assert!(
        bf.refused_connections() > 0,
        "{case}: the forwarder never tried while Blueflood was down"
    );
    assert!(
        n(&during["ledger"]["buffered"]) + n(&during["ledger"]["in_flight"]) > 0,
        "{case}: nothing held during the outage: {during:#}"
    );
    bf.set_down(false);
    let sent = load.await.expect("load");
    let s = finish(c, &bf, sent, 0).await;
    assert!(
        n(&s["delivery"]["retries"]) > 0,
        "{case}: no retries counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_429_with_retry_after_loses_nothing() {
    let case = "429 storm with Retry-After: 1";
    let faults = (0..8)
        .map(|_| Fault::TooManyRequests {
            retry_after: Some("1".into()),
        })
        .collect();
    let bf = queued_faults(case, faults, &[]).await;
    assert_eq!(statuses(&bf, 429), 8, "{case}: every 429 answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_500_and_503_lose_nothing() {
    let case = "500/503 bursts";
    let faults = (0..20)
        .map(|i| Fault::Status(if i % 2 == 0 { 500 } else { 503 }))
        .collect();
    let bf = queued_faults(case, faults, &[]).await;
    assert_eq!(statuses(&bf, 500) + statuses(&bf, 503), 20, "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_before_and_after_storing_lose_nothing() {
    let case = "connection resets (before and after the store)";
    let faults = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                Fault::Reset
            } else {
                Fault::ResetAfterStore
            }
        })
        .collect();
    let bf = queued_faults(case, faults, &[]).await;
    assert_eq!(statuses(&bf, 0), 10, "{case}: every reset happened");
    assert!(
        bf.write_count() > bf.stored_count(),
        "{case}: a reset after the store must be retried (upserted again)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_timeout_lose_nothing() {
    let case = "answers slower than --request-timeout 1";
    let faults = (0..3)
        .map(|_| Fault::Delay(Duration::from_millis(1500)))
        .collect();
    queued_faults(case, faults, &["--request-timeout", "1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_413_split_and_lose_nothing() {
    let case = "413 answers";
    let bf = queued_faults(case, (0..3).map(|_| Fault::Status(413)).collect(), &[]).await;
    assert_eq!(statuses(&bf, 413), 3, "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_207_rejects_drop_exactly_the_rejected_points() {
    let case = "207 partial rejects (points 4 days old)";
    let bf = BluefloodDouble::start().await;
    // The forwarder's own window is opened to 10 days so the old points reach Blueflood, whose
    // window (3 days) rejects them one by one in a 207.
    let c = spawn(case, &bf.url(), &["--max-past", "864000"]);
    let load = tokio::spawn(line_load(c.line, "ok", 30, 50, Duration::from_millis(30)));
    let old = support::now_ms() / 1000 - 4 * 86400;
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("old.m{i} {i} {old}\n"));
    }
    support::send_tcp(c.line, text.as_bytes()).await;
    let sent = load.await.expect("load") + 40;
    finish(c, &bf, sent, 40).await;
    assert!(statuses(&bf, 207) >= 1, "{case}: no 207 seen");
    assert!(
        bf.stored()
            .iter()
            .all(|p| !p.metric_name.starts_with("pre.old.")),
        "{case}: an old point was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_points_answered_400_cost_exactly_themselves() {
    let case = "400 poison points";
    let bf = BluefloodDouble::start().await;
    let poison: Vec<String> = ["pre.load.b3.m7", "pre.load.b10.m0", "pre.load.b29.m49"]
        .into_iter()
        .map(String::from)
        .collect();
    bf.set_reject_names(poison.clone());
    let c = spawn(case, &bf.url(), &[]);
    let sent = line_load(c.line, "load", 30, 50, Duration::from_millis(30)).await;
    finish(c, &bf, sent, 3).await;
    assert!(statuses(&bf, 400) >= 3, "{case}: no 400 seen");
    let stored = bf.stored();
    for p in &poison {
        assert!(
            !stored.iter().any(|s| &s.metric_name == p),
            "{case}: poison {p} stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revocation_mid_stream_loses_nothing() {
    let case = "token revocation mid-stream";
    let (ks, bf, _dir, c) = behind_keystone(case, &[]).await;
    let load = tokio::spawn(line_load(c.line, "rev", 40, 50, Duration::from_millis(30)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    ks.revoke_all();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ks.revoke_all();
    let sent = load.await.expect("load");
    finish(c, &bf, sent, 0).await;
    assert!(
        ks.logins().iter().filter(|l| l.accepted).count() >= 2,
        "{case}: no new login after the revocation: {:?}",
        ks.logins()
    );
    assert!(
        statuses(&bf, 401) >= 1,
        "{case}: the revoked token was never refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_rotation_mid_stream_loses_nothing() {
    let case = "credential rotation mid-stream (key file rewritten)";
    let (ks, bf, dir, c) = behind_keystone(case, &[]).await;
    let key = dir.path().join("key");
    let load = tokio::spawn(line_load(c.line, "rot", 40, 50, Duration::from_millis(30)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Rotate: Keystone accepts only k2 from now on, the file says k2, old tokens die.
    ks.set_credentials("alice", "k2");
    write_secret(&key, "k2");
    ks.revoke_all();
    let sent = load.await.expect("load");
    finish(c, &bf, sent, 0).await;
    let last = ks.last_accepted_login();
    assert_eq!(
        last.secret, "k2",
        "{case}: the last good login used the old key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_within_the_deadline() {
    let case = "SIGTERM under load";
    let bf = BluefloodDouble::start().await;
    // Slow answers keep points in flight and buffered when the signal comes.
    bf.set_delay(Some(Duration::from_millis(150)));
    let mut c = spawn(
        case,
        &bf.url(),
        &["--shutdown-timeout", "20", "--concurrency", "2"],
    );
    let pickle = c.pickle;
    let sender = tokio::spawn(async move {
        // Runs until the listener stops accepting; counts nothing itself: the forwarder's final
        // ledger says what it received, and every one of those must be delivered.
        let mut b = 0;
        loop {
            let ts = support::now_ms() as f64 / 1000.0;
            let names: Vec<String> = (0..200).map(|i| format!("term.b{b}.m{i}")).collect();
            let pts: Vec<(&str, f64, f64)> = names
                .iter()
                .map(|s| (s.as_str(), ts.floor(), 1.0))
                .collect();
            let Ok(mut s) = tokio::net::TcpStream::connect(pickle).await else {
                break;
            };
            use tokio::io::AsyncWriteExt;
            if s.write_all(&support::pickle_frame(&pts)).await.is_err() {
                break;
            }
            let _ = s.shutdown().await;
            b += 1;
            if b > 400 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b
    });
    c.wait_status(WAIT, "load flowing and points held", |s| {
        n(&s["ledger"]["received_total"]) >= 10_000
            && n(&s["ledger"]["buffered"]) + n(&s["ledger"]["in_flight"]) > 0
    })
    .await;
    c.sigterm();
    let (code, stopped) = c.wait_exit(Duration::from_secs(25)).await;
    let _ = sender.await;
    assert_eq!(code, Some(0), "{case}: log tail:\n{}", c.log_tail(20));
    let stopped = stopped.unwrap_or_else(|| panic!("{case}: no \"stopped\" line"));
    let received = stopped["received"].as_u64().expect("received");
    assert_eq!(
        stopped["dropped"], 0,
        "{case}: dropped at shutdown: {stopped}"
    );
    assert_eq!(stopped["delivered"], received, "{case}: {stopped}");
    assert_eq!(
        bf.stored_count() as u64,
        received,
        "{case}: the double holds every received point"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carbon_sender_that_reconnects_mid_stream_loses_no_whole_frame() {
    let case = "carbon (pickle) sender reconnecting";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    use tokio::io::AsyncWriteExt;
    let mut sent = 0u64;
    let mut cut = 0;
    for conn in 0..20 {
        let mut s = tokio::net::TcpStream::connect(c.pickle)
            .await
            .expect("connect");
        for frame in 0..5 {
            let ts = (support::now_ms() / 1000) as f64;
            let names: Vec<String> = (0..100)
                .map(|i| format!("rc.c{conn}.f{frame}.m{i}"))
                .collect();
            let pts: Vec<(&str, f64, f64)> =
                names.iter().map(|s| (s.as_str(), ts, i_of(s))).collect();
            s.write_all(&support::pickle_frame(&pts))
                .await
                .expect("write");
            sent += 100;
        }
        if conn % 5 == 4 {
            // Like carbon-relay killed mid-write: half a frame, then the connection goes.
            let f = support::pickle_frame(&[("rc.cut", 1.0, 1.0)]);
            s.write_all(&f[..f.len() / 2]).await.expect("write");
            cut += 1;
        }
        s.shutdown().await.expect("shutdown");
    }
    c.wait_status(WAIT, "every cut frame counted", |s| {
        n(&s["ledger"]["bad_input"]["truncated_frame"]) == cut
    })
    .await;
    finish(c, &bf, sent, 0).await;
}

fn i_of(name: &str) -> f64 {
    name.rsplit('m')
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_in_an_outage_at_full_input_rate() {
    let case = "outage at full input rate, --buffer-bytes 64MiB";
    const BOUND: u64 = 64 << 20;
    const SLACK: u64 = 40 << 20;
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let c = spawn(
        case,
        &bf.url(),
        &["--buffer-bytes", "64MiB", "--shutdown-timeout", "1"],
    );
    let baseline = c.rss_bytes();
    // Names of ~200 bytes: each point costs ~250 buffer bytes, so ~270,000 fill the bound.
    let long = "x".repeat(190);
    let names: Vec<String> = (0..2000).map(|i| format!("mem.{long}.m{i}")).collect();
    let mut max_rss = baseline;
    let mut sent = 0u64;
    let pickle = c.pickle;
    use tokio::io::AsyncWriteExt;
    let mut streams = Vec::new();
    for _ in 0..2 {
        streams.push(
            tokio::net::TcpStream::connect(pickle)
                .await
                .expect("connect"),
        );
    }
    // 400 frames of 2000 points (~3x the bound), as fast as the forwarder reads them.
    for frame in 0..400u64 {
        let ts = (support::now_ms() / 1000) as f64;
        let pts: Vec<(&str, f64, f64)> = names
            .iter()
            .map(|s| (s.as_str(), ts - (frame % 600) as f64, frame as f64))
            .collect();
        let s = &mut streams[(frame % 2) as usize];
        s.write_all(&support::pickle_frame(&pts))
            .await
            .expect("write");
        sent += 2000;
        if frame % 20 == 0 {
            max_rss = max_rss.max(c.rss_bytes());
        }
    }
    for mut s in streams {
        s.shutdown().await.expect("shutdown");
    }
    let s = c
        .wait_status(WAIT, "every point received", |s| {
            n(&s["ledger"]["received_total"]) == sent
        })
        .await;
    max_rss = max_rss.max(c.rss_bytes());
    let full = n(&s["ledger"]["dropped"]["buffer_full"]);
    eprintln!(
        "{case}: baseline RSS {} MiB, max RSS {} MiB, buffer {} bytes of {BOUND}, buffer_full drops {full} of {sent}",
        baseline >> 20,
        max_rss >> 20,
        n(&s["buffer"]["bytes"])
    );
    assert!(full > 0, "{case}: no buffer_full drops counted: {s:#}");
    assert!(
        n(&s["buffer"]["bytes"]) <= BOUND,
        "{case}: buffer over its bound: {s:#}"
    );
    // Measured as growth over the idle process (the debug test binary idles at ~22 MiB of
    // code, TLS roots and runtime): the buffer's bound plus 40 MiB of slack for connection
    // read buffers, decoding and allocator overhead.
    assert!(
        max_rss.saturating_sub(baseline) < BOUND + SLACK,
        "{case}: RSS grew {} MiB (from {} to {} MiB), over the bound + 40 MiB ({} MiB)",
        max_rss.saturating_sub(baseline) >> 20,
        baseline >> 20,
        max_rss >> 20,
        (BOUND + SLACK) >> 20
    );
    assert_eq!(s["ledger"]["balanced"], true, "{case}: {s:#}");
    // Still down: the shutdown deadline ends it. (That the books then close exactly is
    // `shutdown_deadline_in_an_outage_accounts_for_every_point`, ignored for a bug.)
    let stopped = c.stop(Duration::from_secs(20)).await;
    let stopped = stopped.expect("stopped line");
    assert_eq!(stopped["received"], sent, "{case}: {stopped}");
    assert_eq!(stopped["delivered"], 0, "{case}: {stopped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_in_an_outage_accounts_for_every_point() {
    let case = "SIGTERM with --shutdown-timeout 1 while Blueflood is down";
    for round in 0..5 {
        let bf = BluefloodDouble::start().await;
        bf.set_down(true);
        let c = spawn(case, &bf.url(), &["--shutdown-timeout", "1"]);
        let names: Vec<String> = (0..5000).map(|i| format!("sd.r{round}.m{i}")).collect();
        let ts = (support::now_ms() / 1000) as f64;
        let mut stream = Vec::new();
        for f in 0..20 {
            let pts: Vec<(&str, f64, f64)> = names
                .iter()
                .map(|s| (s.as_str(), ts - f as f64, 1.0))
                .collect();
            stream.extend(support::pickle_frame(&pts));
        }
        support::send_tcp(c.pickle, &stream).await;
        c.wait_status(WAIT, "100,000 received", |s| {
            n(&s["ledger"]["received_total"]) == 100_000 && s["ledger"]["balanced"] == true
        })
        .await;
        let stopped = c.stop(Duration::from_secs(20)).await;
        let stopped = stopped.expect("stopped line");
        assert_eq!(stopped["received"], 100_000, "{case}: {stopped}");
        assert_eq!(
            stopped["dropped"], 100_000,
            "{case} (round {round}): every point must be counted (shutdown_timeout); \
             the final ledger is missing some: {stopped}"
        );
    }
}
