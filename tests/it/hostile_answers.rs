//! Answers from something other than a healthy Blueflood, against the binary as a child
//! process: a load balancer that redirects, a proxy in front that refuses every request with
//! its own 400 or a 413, a Blueflood-shaped 400 for every request, bodies far larger than any
//! answer needs (or endless), and a `Retry-After` that would park a batch for ever. In every
//! case no datapoint is lost or counted delivered when it was not stored, memory stays bounded,
//! and the ledger balances.

use crate::reliability_child;
use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use reliability_child::{BIN, Child, n, spawn, spawn_command};
use support::blueflood::{BluefloodDouble, Fault};
use support::keystone::KeystoneDouble;

/// A failsafe for every wait: the cases finish in seconds; this only turns a hang into a
/// failure with the case's status and log.
const WAIT: Duration = Duration::from_secs(60);

/// `count` line-protocol points named `{stem}.m{i}`, timestamped now.
fn lines(stem: &str, count: usize) -> String {
    support::numbered_lines(stem, count, support::now_whole_secs())
}

fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Respond {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.to_owned(),
    }
}

/// Polls (bounded by [`WAIT`]) until `f` holds.
async fn wait_for(c: &Child, what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < end,
            "{}: timed out waiting for {what}; /status {:#}\nlog tail:\n{}",
            c.case,
            c.status().await,
            c.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Once the points `sent` so far are all received: nothing is delivered or dropped, all held.
async fn assert_all_kept(c: &Child, sent: u64, during: &str) {
    let s = c
        .wait_status(WAIT, &format!("{sent} received"), |s| {
            n(&s["ledger"]["received_total"]) >= sent
        })
        .await;
    let l = &s["ledger"];
    assert_eq!(
        (n(&l["delivered"]), n(&l["dropped_total"])),
        (0, 0),
        "{}: during {during}, points were counted delivered or dropped; /status {s:#}",
        c.case
    );
    assert_eq!(n(&l["received_total"]), sent, "{}: {s:#}", c.case);
    assert_eq!(l["balanced"], true, "{}: {s:#}", c.case);
}

/// Waits until all `sent` points are delivered and nothing is held anywhere, checks that
/// nothing was dropped and that the double stored every point, then SIGTERM and exit 0.
async fn finish_all_delivered(c: Child, bf: &BluefloodDouble, sent: u64) {
    let case = c.case.clone();
    let s = c
        .wait_status(WAIT, &format!("{sent} delivered"), |s| {
            let l = &s["ledger"];
            n(&l["delivered"]) + n(&l["dropped_total"]) >= sent
                && l["buffered"] == 0
                && l["in_flight"] == 0
                && n(&l["spooled"]) == 0
                && l["balanced"] == true
        })
        .await;
    let l = &s["ledger"];
    assert_eq!(n(&l["received_total"]), sent, "{case}: {s:#}");
    assert_eq!(n(&l["delivered"]), sent, "{case}: {s:#}");
    assert_eq!(n(&l["dropped_total"]), 0, "{case}: {s:#}");
    assert_eq!(
        bf.stored_count() as u64,
        sent,
        "{case}: datapoints stored in the Blueflood double"
    );
    c.stop(Duration::from_secs(30)).await;
}

/// Log lines (JSON) whose text contains `needle`.
fn logged(c: &Child, needle: &str) -> Vec<String> {
    c.log_lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_and_keep_the_data() {
    let case = "3xx from Blueflood's address";
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    // Another origin that answers 200 to anything: following a redirect there would count
    // every point delivered though nothing was stored, and hand it the token.
    let elsewhere = BluefloodDouble::start().await;
    elsewhere.set_blanket(Some(Fault::Status(200)));
    let location = format!(
        "{}/v2.0/t1/ingest?pad={}",
        elsewhere.url(),
        "x".repeat(5000)
    );
    let ks_url = ks.url();
    let c = spawn(
        case,
        &bf.url(),
        &["-u", "alice", "-k", "k1", "--auth-url", &ks_url],
    );
    let mut sent = 0;
    for status in [301, 302, 303, 307, 308] {
        bf.set_blanket(Some(respond(status, &[("location", &location)], "")));
        support::send_tcp(c.line, lines(&format!("r{status}"), 100).as_bytes()).await;
        sent += 100;
        // Answered twice: the batch was kept and retried, not settled by the first answer.
        wait_for(&c, &format!("two {status} answers"), || {
            bf.answered(status) >= 2
        })
        .await;
        assert_all_kept(&c, sent, &format!("{status} answers")).await;
        assert!(
            elsewhere.requests().is_empty(),
            "{case}: after {status}, the redirect target got {:?}",
            elsewhere.requests()
        );
    }
    bf.set_blanket(None);
    finish_all_delivered(c, &bf, sent).await;
    assert!(
        elsewhere.requests().is_empty(),
        "{case}: the target was asked"
    );
    assert!(
        bf.requests()
            .iter()
            .all(|r| r.method == "POST" && r.path == "/v2.0/t1/ingest"),
        "{case}: a request that was not the ingest POST reached Blueflood's address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_log_names_the_location_escaped_and_bounded() {
    let case = "3xx logged with its Location";
    let bf = BluefloodDouble::start().await;
    let location = format!("http://elsewhere.example/{}", "y".repeat(5000));
    bf.set_blanket(Some(respond(302, &[("location", &location)], "")));
    let c = spawn(case, &bf.url(), &[]);
    support::send_tcp(c.line, lines("loc", 10).as_bytes()).await;
    wait_for(&c, "a redirect logged", || {
        !logged(&c, "elsewhere.example").is_empty()
    })
    .await;
    for line in logged(&c, "elsewhere.example") {
        assert!(
            line.len() < 2000,
            "{case}: the 5 kB Location was logged whole: {} bytes",
            line.len()
        );
    }
    bf.set_blanket(None);
    finish_all_delivered(c, &bf, 10).await;
}

/// nginx's answer to a request whose headers are too large (a 16 KiB token, say).
const NGINX_400: &str = "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_answering_400_to_everything_costs_no_datapoint() {
    let case = "a proxy's 400 for every request";
    let bf = BluefloodDouble::start().await;
    bf.set_blanket(Some(respond(
        400,
        &[("content-type", "text/html")],
        NGINX_400,
    )));
    let c = spawn(case, &bf.url(), &[]);
    support::send_tcp(c.line, lines("px", 1000).as_bytes()).await;
    wait_for(&c, "twenty 400 answers", || bf.answered(400) >= 20).await;
    assert_all_kept(&c, 1000, "the proxy's 400s").await;
    bf.set_blanket(None);
    finish_all_delivered(c, &bf, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blueflood_shaped_400_for_every_request_costs_no_datapoint() {
    let case = "Blueflood's own 400 naming no point, for every request";
    let bf = BluefloodDouble::start().await;
    let cannot_parse = r#"{"errors":[{"tenantId":"t1","timestamp":null,"metricName":"","source":null,"message":"Cannot parse content"}]}"#;
    bf.set_blanket(Some(respond(400, &[], cannot_parse)));
    let c = spawn(case, &bf.url(), &[]);
    // Few points, so that bisection reaches single points while every answer is a 400.
    support::send_tcp(c.line, lines("bl", 4).as_bytes()).await;
    wait_for(&c, "thirty 400 answers", || bf.answered(400) >= 30).await;
    assert_all_kept(&c, 4, "400s for every request").await;
    bf.set_blanket(None);
    finish_all_delivered(c, &bf, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_for_small_bodies_is_rate_limiting_not_size() {
    let case = "413 for every small body";
    let bf = BluefloodDouble::start().await;
    bf.set_blanket(Some(Fault::Status(413)));
    let c = spawn(case, &bf.url(), &[]);
    support::send_tcp(c.line, lines("rl", 300).as_bytes()).await;
    wait_for(&c, "twenty 413 answers", || bf.answered(413) >= 20).await;
    assert_all_kept(&c, 300, "413s for small bodies").await;
    bf.set_blanket(None);
    finish_all_delivered(c, &bf, 300).await;
}

/// The peak resident set of a process, from `/proc/PID/status`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_answer_bodies_cost_bounded_memory() {
    let case = "1 GiB and endless answer bodies";
    const GIB: u64 = 1 << 30;
    // Far below the 1 GiB a body-reading client would hold, far above the forwarder's own
    // need (about 10-30 MiB), so that a loaded machine cannot make it fail.
    const BOUND: u64 = 200 << 20;
    let bf = BluefloodDouble::start().await;
    for fault in [
        // Not Blueflood's answers: kept and retried, whatever their size.
        Fault::Stream {
            status: 400,
            len: Some(GIB),
            store: false,
        },
        Fault::Stream {
            status: 400,
            len: None,
            store: false,
        },
        Fault::Stream {
            status: 207,
            len: None,
            store: false,
        },
        Fault::Stream {
            status: 503,
            len: None,
            store: false,
        },
        // Stored, with a body nobody needs: delivered.
        Fault::Stream {
            status: 200,
            len: Some(GIB),
            store: true,
        },
    ] {
        bf.push_fault(fault);
    }
    let c = spawn(case, &bf.url(), &["--request-timeout", "1"]);
    let baseline = peak_rss_bytes(c.pid());
    support::send_tcp(c.line, lines("big", 100).as_bytes()).await;
    c.wait_status(WAIT, "the first 100 delivered", |s| {
        n(&s["ledger"]["delivered"]) == 100
    })
    .await;
    let first = peak_rss_bytes(c.pid());
    eprintln!("{case}: peak RSS {} MiB after 1 GiB answers", first >> 20);
    bf.push_fault(Fault::Stream {
        status: 200,
        len: None,
        store: true,
    });
    support::send_tcp(c.line, lines("end", 100).as_bytes()).await;
    c.wait_status(WAIT, "the next 100 delivered", |s| {
        n(&s["ledger"]["delivered"]) == 200
    })
    .await;
    let peak = peak_rss_bytes(c.pid());
    eprintln!(
        "{case}: peak RSS {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
    assert!(
        peak < BOUND,
        "{case}: peak RSS {} MiB, bound {} MiB",
        peak >> 20,
        BOUND >> 20
    );
    finish_all_delivered(c, &bf, 200).await;
    assert_eq!(
        bf.answered(400),
        2,
        "{case}: the 400s were each answered once"
    );
}

/// The forwarder with `retry_after_max` set through the environment (an unknown variable is
/// ignored with a warning, so the same command runs on a build without the key).
fn spawn_with_retry_after_max(case: &str, bf: &BluefloodDouble, extra: &[&str]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.env("BLUEFLOOD_FORWARD_RETRY_AFTER_MAX", "1");
    spawn_command(case, cmd, &bf.url(), extra)
}

const NEVER: [&str; 2] = ["4294967295", "Fri, 31 Dec 9999 23:59:59 GMT"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_is_capped_and_logged() {
    let case = "503 with Retry-After: 4294967295, then one in the year 9999";
    let bf = BluefloodDouble::start().await;
    for ra in NEVER {
        bf.push_fault(respond(503, &[("retry-after", ra)], ""));
    }
    let c = spawn_with_retry_after_max(case, &bf, &[]);
    support::send_tcp(c.line, lines("ra", 100).as_bytes()).await;
    wait_for(&c, "the cap logged", || {
        !logged(&c, "Retry-After").is_empty()
    })
    .await;
    let c_log = logged(&c, "Retry-After");
    finish_all_delivered(c, &bf, 100).await;
    assert!(
        c_log.iter().any(|l| l.contains("retry_after_max")),
        "{case}: the log does not name the key: {c_log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_does_not_park_the_spool_drainer() {
    let case = "Retry-After for ever, answered to the spool's drainer";
    let bf = BluefloodDouble::start().await;
    for ra in NEVER {
        bf.push_fault(respond(503, &[("retry-after", ra)], ""));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().display().to_string();
    // The live batch that gets the first 503 goes to the spool; its drainer gets the second.
    let c = spawn_with_retry_after_max(case, &bf, &["--spool-dir", &spool]);
    support::send_tcp(c.line, lines("sp", 100).as_bytes()).await;
    finish_all_delivered(c, &bf, 100).await;
}
