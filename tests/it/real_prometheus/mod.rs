//! The forwarder's `/metrics` against the real Prometheus programs (Debian's `prometheus` 2.42,
//! installed by `scripts/real-prometheus.sh`): `promtool check metrics` reads the classic 0.0.4
//! answer of a forwarder that has run with traffic and drops; a real Prometheus scrapes the
//! admin port every second, without and with `--admin-token-file` (a bearer credentials file),
//! and the values it stores for received, delivered and dropped-by-reason must equal the ledger
//! in `/status` once the books are settled. With a token, scrapes with a wrong or no token must
//! leave their target down.
//!
//! The programs come from `BFF_PROMETHEUS` / `BFF_PROMTOOL`, else `/usr/bin/...`, else the
//! PATH. Without them a test passes without running and says `SKIPPED ...`, unless it runs in CI
//! (`CI=true`) or with `BFF_INTEROP_REQUIRED=1` (set by the script), when it fails.

mod rules;
mod server;

use crate::reliability_child::{self, Child};
use crate::support::{self, blueflood::BluefloodDouble};
use server::{Prometheus, scrape_job};

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// The poison metric: the Blueflood double answers 400 for any request naming it.
const POISON: &str = "pre.prom.poison";

/// `env`, else `/usr/bin/NAME`, else NAME on the PATH.
pub(super) fn program(name: &str, env: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let usr = Path::new("/usr/bin").join(name);
    if usr.is_file() {
        return Some(usr);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The admin server as a scraper sees it: GETs with an optional bearer token.
struct Admin {
    addr: SocketAddr,
    token: Option<String>,
    http: reqwest::Client,
}

impl Admin {
    fn new(addr: SocketAddr, token: Option<&str>) -> Admin {
        Admin {
            addr,
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    async fn get(&self, path: &str, accept: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("http://{}{path}", self.addr));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.expect("admin answers");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r
    }

    async fn status(&self) -> serde_json::Value {
        self.get("/status", None)
            .await
            .json()
            .await
            .expect("/status is JSON")
    }

    /// Waits until `received` points arrived and every one is settled (nothing waiting,
    /// buffered or in flight, the ledger balanced); returns the ledger.
    async fn settle(&self, c: &Child, received: u64) -> serde_json::Value {
        let end = Instant::now() + WAIT;
        loop {
            let s = self.status().await;
            let l = &s["ledger"];
            if l["received_total"].as_u64() >= Some(received)
                && reliability_child::n(&l["waiting_for_room"]) == 0
                && l["buffered"] == 0
                && l["in_flight"] == 0
                && l["balanced"] == true
            {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "{}: not settled after {WAIT:?}; /status {s:#}\nlog:\n{}",
                c.case,
                c.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Traffic with drops of four reasons, over all three listeners: good points (pickle, line
/// TCP, line UDP), a line that is not a number (decode_error), a NaN (nan), a timestamp far
/// in the past (out_of_window), and the poison metric Blueflood answers 400 for, isolated by
/// bisection (rejected_by_blueflood). Returns the number of datapoints received.
async fn traffic(c: &Child) -> u64 {
    let ts = support::now_whole_secs();
    let sent = reliability_child::line_load(c.line, "prom.line", 4, 50, Duration::ZERO).await;
    let pickled: Vec<(String, f64, f64)> = (0..30)
        .map(|i| (format!("prom.pickle.m{i}"), ts, i as f64))
        .collect();
    let refs: Vec<(&str, f64, f64)> = pickled
        .iter()
        .map(|(n, t, v)| (n.as_str(), *t, *v))
        .collect();
    support::send_tcp(c.pickle, &support::pickle_frame(&refs)).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    udp.send_to(
        format!("prom.udp.a 1 {ts}\nprom.udp.b 2 {ts}\n").as_bytes(),
        c.udp,
    )
    .await
    .expect("udp send");
    let bad = format!(
        "prom.bad not-a-number {ts}\nprom.nan nan {ts}\nprom.old 1 100\nprom.poison 7 {ts}\n"
    );
    support::send_tcp(c.line, bad.as_bytes()).await;
    sent + 30 + 2 + 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_the_classic_metrics_clean_after_traffic_and_drops() {
    let Some(promtool) = program("promtool", "BFF_PROMTOOL") else {
        support::prerequisite_missing(
            "promtool_finds_the_classic_metrics_clean_after_traffic_and_drops",
            "no promtool (BFF_PROMTOOL, /usr/bin/promtool or PATH; scripts/real-prometheus.sh installs it)",
        );
        return;
    };
    let bf = BluefloodDouble::start().await;
    bf.set_reject_names(vec![POISON.into()]);
    // With a spool, so its families are checked too.
    let spool = tempfile::tempdir().expect("tempdir");
    let spool_s = spool.path().display().to_string();
    let c = reliability_child::spawn("promtool", &bf.url(), &["--spool-dir", &spool_s]);
    let admin = Admin::new(c.admin, None);
    let received = traffic(&c).await;
    let ledger = admin.settle(&c, received).await;
    for reason in [
        "decode_error",
        "nan",
        "out_of_window",
        "rejected_by_blueflood",
    ] {
        assert!(
            ledger["dropped"][reason].as_u64() > Some(0),
            "no {reason} drop: {ledger:#}"
        );
    }

    // No Accept header (curl, promtool): the classic format.
    let r = admin.get("/metrics", None).await;
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(r.headers()["vary"], "Accept");
    let classic = r.text().await.expect("body");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool.display()));
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(classic.as_bytes())
        .expect("write to promtool");
    // promtool reads to EOF and exits at once; bound the wait all the same.
    let out = wait_output(check, Duration::from_secs(30));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {} {said}\n--- the answer it read:\n{classic}",
        out.status
    );
    assert!(
        classic.contains("\n# TYPE blueflood_forward_datapoints_dropped_total counter\n"),
        "{classic}"
    );
    assert!(
        !classic.contains("# EOF") && !classic.contains("# UNIT"),
        "{classic}"
    );
    // Prometheus' own Accept: OpenMetrics.
    let om = admin
        .get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
        )
        .await;
    assert_eq!(
        om.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.text().await.expect("body").ends_with("# EOF\n"));

    assert_eq!(
        bf.stored_count() as u64,
        ledger["delivered"].as_u64().expect("delivered")
    );
    c.stop(Duration::from_secs(30)).await;
}

/// Waits (bounded) for a child that was handed all its input; kills it past `within`.
fn wait_output(mut child: std::process::Child, within: Duration) -> std::process::Output {
    let end = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

async fn ledger_equals_what_prometheus_stored(case: &str, with_token: bool) {
    let Some(bin) = program("prometheus", "BFF_PROMETHEUS") else {
        support::prerequisite_missing(
            case,
            "no prometheus (BFF_PROMETHEUS, /usr/bin/prometheus or PATH; scripts/real-prometheus.sh installs it)",
        );
        return;
    };
    let bf = BluefloodDouble::start().await;
    bf.set_reject_names(vec![POISON.into()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "scrape-token-4f1c9a";
    let token_file = dir.path().join("admin-token");
    let wrong_file = dir.path().join("wrong-token");
    support::secrets::write_secret(&token_file, token);
    support::secrets::write_secret(&wrong_file, "not-the-token");
    let token_s = token_file.display().to_string();
    let extra: Vec<&str> = if with_token {
        vec!["--admin-token-file", &token_s]
    } else {
        vec![]
    };
    let c = reliability_child::spawn(case, &bf.url(), &extra);
    let admin = Admin::new(c.admin, with_token.then_some(token));

    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    config.push_str(&scrape_job(
        "forwarder",
        c.admin,
        with_token.then_some(&*token_file),
    ));
    if with_token {
        config.push_str(&scrape_job("wrong_token", c.admin, Some(&wrong_file)));
        config.push_str(&scrape_job("no_token", c.admin, None));
    }
    let prom = Prometheus::start(&bin, &config).await;

    let received = traffic(&c).await;
    let ledger = admin.settle(&c, received).await;
    let settled_at = support::now_secs_f64();
    prom.scraped_since("forwarder", settled_at).await;

    assert_eq!(
        prom.scalar("up{job=\"forwarder\"}").await,
        1.0,
        "{}",
        prom.log_text()
    );
    // Prometheus asked for OpenMetrics and got it: only that format carries units, which the
    // metadata then shows.
    let meta = prom
        .api(
            "/api/v1/metadata",
            &[("metric", "blueflood_forward_buffered_bytes")],
        )
        .await;
    assert_eq!(
        meta["blueflood_forward_buffered_bytes"][0]["unit"], "bytes",
        "metadata: {meta:#}"
    );

    let job = "{job=\"forwarder\"}";
    let stored = |rows: Vec<(serde_json::Value, f64)>, label: &str| -> BTreeMap<String, u64> {
        rows.into_iter()
            .map(|(m, v)| (m[label].as_str().expect(label).to_string(), v as u64))
            .collect()
    };
    let received_by = stored(
        prom.query(&format!("blueflood_forward_datapoints_received_total{job}"))
            .await,
        "protocol",
    );
    let dropped_by = stored(
        prom.query(&format!("blueflood_forward_datapoints_dropped_total{job}"))
            .await,
        "reason",
    );
    let delivered = prom
        .scalar(&format!(
            "blueflood_forward_datapoints_delivered_total{job}"
        ))
        .await as u64;
    let as_map = |v: &serde_json::Value| -> BTreeMap<String, u64> {
        v.as_object()
            .expect("an object")
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().expect("a count")))
            .collect()
    };
    assert_eq!(
        received_by,
        as_map(&ledger["received"]),
        "received, by protocol"
    );
    assert_eq!(dropped_by, as_map(&ledger["dropped"]), "dropped, by reason");
    assert_eq!(Some(delivered), ledger["delivered"].as_u64(), "delivered");
    let reasons = dropped_by.values().filter(|n| **n > 0).count();
    assert!(reasons >= 4, "drops of several reasons: {dropped_by:?}");
    assert_eq!(received_by.values().sum::<u64>(), received);
    assert_eq!(
        delivered + dropped_by.values().sum::<u64>(),
        received,
        "balanced"
    );
    assert_eq!(bf.stored_count() as u64, delivered, "what Blueflood stored");

    if with_token {
        for job in ["wrong_token", "no_token"] {
            prom.scraped_since(job, settled_at).await;
            assert_eq!(
                prom.scalar(&format!("up{{job=\"{job}\"}}")).await,
                0.0,
                "{job}"
            );
        }
        let targets = prom.api("/api/v1/targets", &[]).await;
        let shown = targets.to_string();
        assert!(
            shown.contains("401"),
            "the refused scrapes say 401: {targets:#}"
        );
        assert!(
            !shown.contains(token),
            "the token is not shown by Prometheus"
        );
        assert!(!prom.log_text().contains(token), "nor logged by it");
    }
    assert!(
        !c.log_lines().join("\n").contains(token),
        "the forwarder logs the token"
    );
    prom.stop().await;
    c.stop(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_ledger_scraping_without_a_token() {
    ledger_equals_what_prometheus_stored(
        "prometheus_stores_the_ledger_scraping_without_a_token",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_ledger_scraping_with_a_bearer_credentials_file() {
    ledger_equals_what_prometheus_stored(
        "prometheus_stores_the_ledger_scraping_with_a_bearer_credentials_file",
        true,
    )
    .await;
}
