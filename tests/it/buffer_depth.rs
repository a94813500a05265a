//! `/buffer` (and `/status`'s `pending`) and the pending gauges through the real binary: during
//! a Blueflood outage every waiting point is shown wherever it waits (in flight, spooled,
//! blocked at a connection) with a delivery lag that grows, the gauges agree, and everything
//! reads zero and null once Blueflood is back and the backlog drained; `/buffer` is behind the
//! admin token like `/status`.

use std::time::{Duration, Instant};

use crate::reliability_child::{Child, line_load, n, spawn};
use crate::support::{self, blueflood::BluefloodDouble};

const WAIT: Duration = Duration::from_secs(30);
const POINTS_PER_BATCH: usize = 1000;
const BATCHES: usize = 5;

async fn buffer(c: &Child) -> serde_json::Value {
    let body = c.admin_get("/buffer").await;
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{}: /buffer is not JSON ({e}): {body}", c.case))
}

fn age(b: &serde_json::Value) -> Option<f64> {
    b["oldest_pending_age_seconds"].as_f64()
}

/// Received, not delivered and not dropped, by the ledger of a `/status` document.
fn unsettled(s: &serde_json::Value) -> u64 {
    let l = &s["ledger"];
    n(&l["received_total"]) - n(&l["delivered"]) - n(&l["dropped_total"])
}

/// The parts of a pending document add up to its total.
fn assert_parts_add_up(case: &str, b: &serde_json::Value) {
    let parts = ["buffered", "in_flight", "spooled", "waiting"]
        .iter()
        .map(|k| n(&b[format!("{k}_datapoints")]))
        .sum::<u64>();
    assert_eq!(n(&b["pending_datapoints"]), parts, "{case}: {b:#}");
}

/// One series of `/metrics` in the format `accept` asks for (`None`: the default, 0.0.4).
async fn metric(c: &Child, accept: Option<&str>, name: &str) -> f64 {
    let text = support::scrape::metrics_text(c.admin, accept).await;
    support::scrape::series(&text, name).unwrap_or_else(|| {
        panic!(
            "{}: {name} missing from /metrics ({accept:?}):\n{text}",
            c.case
        )
    })
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// The gauges equal `/buffer`'s figures at rest, in both formats: the count exactly, the age
/// between two `/buffer` reads around the scrape (it grows while Blueflood is down).
async fn assert_gauges_agree(c: &Child) {
    for accept in [None, Some(OPENMETRICS)] {
        let before = buffer(c).await;
        let pending = metric(c, accept, "blueflood_forward_pending_datapoints").await;
        let lag = metric(c, accept, "blueflood_forward_oldest_pending_age_seconds").await;
        let after = buffer(c).await;
        let case = &c.case;
        assert_eq!(
            before["pending_datapoints"], after["pending_datapoints"],
            "{case}: not at rest"
        );
        assert_eq!(
            pending as u64,
            n(&before["pending_datapoints"]),
            "{case} {accept:?}"
        );
        let (lo, hi) = (age(&before).unwrap_or(0.0), age(&after).unwrap_or(0.0));
        assert!(
            lo <= lag && lag <= hi,
            "{case} {accept:?}: {lo} <= {lag} <= {hi}"
        );
    }
}

/// Where the points wait during the outage, which says when nothing moves any more.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// In memory: in flight (retried) and buffered.
    Memory,
    /// On disk: every live batch spooled, and the drainer holding its first record (retried
    /// in place until Blueflood is back).
    Spool,
    /// `--buffer-policy block` and a small buffer: part of the input waits at the connections
    /// (or in the kernel, not yet received).
    Block,
}

/// The state a mode's outage comes to rest in (all input read, or blocked).
fn at_rest(mode: Mode, s: &serde_json::Value, sent: u64) -> bool {
    let (l, p) = (&s["ledger"], &s["pending"]);
    let all_in = n(&l["received_total"]) == sent;
    match mode {
        Mode::Memory => all_in,
        Mode::Spool => {
            let read = n(&s["spool"]["read_total"]);
            all_in && read > 0 && n(&p["in_flight_datapoints"]) == read && n(&l["buffered"]) == 0
        }
        Mode::Block => n(&p["waiting_datapoints"]) > 0,
    }
}

/// How Blueflood is out.
#[derive(Clone, Copy, PartialEq)]
enum Outage {
    /// Every connection reset: a request fails at once.
    Down,
    /// No answer: a request fails at `--request-timeout` (2 s here), its points in memory all
    /// that time before they are spooled.
    Hangs,
}

/// Blueflood out, `BATCHES` connections of points sent, then Blueflood back.
async fn outage_then_recovery(case: &str, extra: &[&str], mode: Mode, outage: Outage) -> Child {
    let bf = BluefloodDouble::start().await;
    match outage {
        Outage::Down => bf.set_down(true),
        Outage::Hangs => bf.set_delay(Some(Duration::from_secs(3600))),
    }
    let c = spawn(case, &bf.url(), extra);
    let idle = buffer(&c).await;
    assert_eq!(n(&idle["pending_datapoints"]), 0, "{case}: {idle:#}");
    assert!(
        age(&idle).is_none(),
        "{case}: a lag with nothing pending: {idle:#}"
    );

    let sent_at = Instant::now();
    let sent = line_load(c.line, case, BATCHES, POINTS_PER_BATCH, Duration::ZERO).await;
    // Every point past the decoder (not under `block`, where part of the input never is):
    // all arrived before `all_in`, whatever happens to them next.
    if mode != Mode::Block {
        c.wait_status(WAIT, "every point received and pending", |s| {
            n(&s["ledger"]["received_total"]) == sent
                && n(&s["pending"]["pending_datapoints"]) == sent
        })
        .await;
    }
    let all_in = Instant::now();
    // At rest: every received point pending in one place or another, none settled; and (so
    // that the oldest arrived before `rested`) all of them past the decoder.
    let status = c
        .wait_status(WAIT, "every received point pending", |s| {
            let p = &s["pending"];
            at_rest(mode, s, sent)
                && s["ledger"]["balanced"] == true
                && n(&p["pending_datapoints"]) == unsettled(s)
                && n(&s["ledger"]["delivered"]) == 0
        })
        .await;
    let rested = Instant::now();
    assert_parts_add_up(case, &status["pending"]);

    // `/buffer` alone shows the same: read it, then the ledger, until nothing moved between.
    let end = Instant::now() + WAIT;
    let first = loop {
        let b = buffer(&c).await;
        let s = c.status().await;
        if n(&b["pending_datapoints"]) == unsettled(&s) && n(&b["pending_datapoints"]) > 0 {
            break b;
        }
        assert!(
            Instant::now() < end,
            "{case}: /buffer {b:#} vs /status {s:#}"
        );
    };
    assert_parts_add_up(case, &first);
    // The lag is the oldest point's arrival age: it arrived after `sent_at`, before `all_in`
    // (not when it was spooled: with a Blueflood that hangs, seconds later). Spool records keep
    // milliseconds: up to 2 ms of rounding either way.
    let lower = if mode == Mode::Block { rested } else { all_in }
        .elapsed()
        .as_secs_f64();
    let first_age = age(&first).unwrap_or_else(|| panic!("{case}: no lag: {first:#}"));
    let upper = sent_at.elapsed().as_secs_f64();
    assert!(
        lower - 0.002 <= first_age && first_age <= upper + 0.002,
        "{case}: {lower} <= {first_age} <= {upper}: {first:#}"
    );
    // It grows while Blueflood stays down.
    let end = Instant::now() + WAIT;
    loop {
        let b = buffer(&c).await;
        if age(&b).is_some_and(|a| a > first_age) {
            break;
        }
        assert!(Instant::now() < end, "{case}: lag not growing: {b:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_gauges_agree(&c).await;

    bf.set_down(false);
    bf.set_delay(None);
    let s = c
        .wait_status(WAIT, "everything delivered", |s| {
            n(&s["ledger"]["delivered"]) == sent && s["ledger"]["balanced"] == true
        })
        .await;
    assert_eq!(n(&s["ledger"]["dropped_total"]), 0, "{case}: {s:#}");
    let end = Instant::now() + WAIT;
    let drained = loop {
        let b = buffer(&c).await;
        if n(&b["pending_datapoints"]) == 0 {
            break b;
        }
        assert!(Instant::now() < end, "{case}: not drained: {b:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(age(&drained).is_none(), "{case}: {drained:#}");
    assert_eq!(
        n(&drained["pending_bytes"]["memory"]),
        0,
        "{case}: {drained:#}"
    );
    for accept in [None, Some(OPENMETRICS)] {
        for name in ["pending_datapoints", "oldest_pending_age_seconds"] {
            let v = metric(&c, accept, &format!("blueflood_forward_{name}")).await;
            assert_eq!(v, 0.0, "{case} {accept:?} {name}");
        }
    }
    let p = c.status().await["pending"].clone();
    assert_eq!(n(&p["pending_datapoints"]), 0, "{case}: {p:#}");
    assert!(age(&p).is_none(), "{case}: {p:#}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_shows_every_point_in_flight_with_a_growing_lag() {
    let case = "buffer_depth_memory";
    let c = outage_then_recovery(case, &[], Mode::Memory, Outage::Down).await;
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_a_spool_shows_the_spooled_points_and_the_lag() {
    let case = "buffer_depth_spool";
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().display().to_string();
    let c = outage_then_recovery(case, &["--spool-dir", &spool], Mode::Spool, Outage::Down).await;
    c.stop(Duration::from_secs(30)).await;
}

/// The points wait in memory for a whole request timeout before they are spooled: their lag
/// is still counted from their arrival, not from the spool write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_blueflood_keeps_the_arrival_age_of_spooled_points() {
    let case = "buffer_depth_spool_hang";
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().display().to_string();
    let c = outage_then_recovery(case, &["--spool-dir", &spool], Mode::Spool, Outage::Hangs).await;
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_block_shows_the_points_waiting_at_connections() {
    let case = "buffer_depth_block";
    let extra = [
        "--buffer-policy",
        "block",
        "--buffer-bytes",
        "65536",
        "--concurrency",
        "1",
        "--limit",
        "4096",
    ];
    let c = outage_then_recovery(case, &extra, Mode::Block, Outage::Down).await;
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_needs_the_admin_token_when_one_is_set() {
    let bf = BluefloodDouble::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "s3cret\n").expect("write token");
    let token_s = token.display().to_string();
    let c = spawn(
        "buffer_depth_token",
        &bf.url(),
        &["--admin-token-file", &token_s],
    );
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", c.admin);
    let bare = http.get(url("/buffer")).send().await.expect("GET /buffer");
    assert_eq!(bare.status().as_u16(), 401);
    let wrong = http
        .get(url("/buffer"))
        .bearer_auth("s3creT")
        .send()
        .await
        .expect("GET /buffer");
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = http
        .get(url("/buffer"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("GET /buffer");
    assert_eq!(ok.status().as_u16(), 200);
    let b: serde_json::Value = ok.json().await.expect("JSON");
    assert_eq!(b["pending_datapoints"], 0, "{b:#}");
    assert!(b["limit_bytes"]["disk"].is_null(), "no spool: {b:#}");
    // The probes stay open.
    let ready = http.get(url("/readyz")).send().await.expect("GET /readyz");
    assert_eq!(ready.status().as_u16(), 200);
    c.stop(Duration::from_secs(30)).await;
}
