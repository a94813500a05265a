//! The operator's view through a real HTTP client: probes, `/status`, `/metrics` and the
//! bearer token, against a running forwarder and the Blueflood double.

use crate::harness;
use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use blueflood_forward::app;
use blueflood_forward::config::settings::Protocol;
use harness::{Forwarder, settings};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(20);

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("admin answers");
    (r.status().as_u16(), r.text().await.expect("body"))
}

fn lines(stem: &str, n: usize, nan_every: usize) -> Vec<u8> {
    let ts = support::now_ms() / 1000;
    (0..n)
        .map(|i| {
            let v = if nan_every > 0 && i % nan_every == 0 {
                "nan".to_string()
            } else {
                i.to_string()
            };
            format!("{stem}.{i} {v} {ts}\n")
        })
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_goes_from_starting_to_ready_to_draining() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    cfg.shutdown_timeout = Duration::from_secs(2);
    let starting = app::bind(cfg).await.expect("bind");
    let admin = format!("http://{}", starting.admin_addr());
    let (code, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(code, 503);
    assert!(body.contains("starting"), "{body}");
    assert_eq!(get(&format!("{admin}/livez")).await.0, 200);

    let running = starting.run();
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);

    // Something to deliver, and Blueflood down: draining lasts until the deadline.
    support::send_tcp(
        running.local_addr(Protocol::LineTcp).expect("line"),
        &lines("d", 10, 0),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.shutdown();
    let (code, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(code, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(
        get(&format!("{admin}/livez")).await.0,
        200,
        "draining is alive"
    );
    let s = running.wait().await;
    assert!(s.balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_above_high_water_and_back_when_drained() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    cfg.buffer.max_bytes = 64 * 1024;
    cfg.forward.concurrency = 1;
    cfg.forward.max_body_bytes = 4096;
    cfg.admin.ready_high_water = 0.8;
    let f = Forwarder::start(cfg).await;
    let admin = format!("http://{}", f.running.admin_addr());
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("hw", 3000, 0)).await;
    f.wait_until(WAIT, "buffer above 80%", |s| {
        s.buffered_bytes as f64 >= 0.8 * 65536.0
    })
    .await;
    let (code, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(code, 503);
    assert!(body.contains("high-water"), "{body}");
    assert_eq!(f.metric("blueflood_forward_ready").await, 0.0);
    bf.set_down(false);
    f.wait_until(WAIT, "buffer drained", |s| s.buffered_points == 0)
        .await;
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);
    assert_eq!(f.metric("blueflood_forward_ready").await, 1.0);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_stays_200_through_a_blueflood_outage() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    // One delivery slot, busy retrying: the flush loop waits for it the whole outage.
    cfg.forward.concurrency = 1;
    cfg.forward.max_body_bytes = 2048;
    let f = Forwarder::start(cfg).await;
    let admin = format!("http://{}", f.running.admin_addr());
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("out", 500, 0)).await;
    // Longer than the staleness limit (10 s), so a loop that stopped beating would show.
    let end = tokio::time::Instant::now() + Duration::from_secs(12);
    while tokio::time::Instant::now() < end {
        let (code, body) = get(&format!("{admin}/livez")).await;
        assert_eq!(code, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        f.snapshot().retries > 0,
        "Blueflood was down the whole time"
    );
    bf.set_down(false);
    f.settle(500, WAIT).await;
    f.stop().await;
}

/// Samples of a metrics page by name and labels.
fn parse_metrics(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .expect("metrics parse")
        .samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("{name} {labels:?} missing"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a scalar"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_agree_with_what_was_sent_and_stored() {
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(settings(&bf.url())).await;
    let admin = format!("http://{}", f.running.admin_addr());
    // 1000 lines, every 10th NaN: 900 delivered, 100 dropped as nan.
    support::send_tcp(f.addr(Protocol::LineTcp), &lines("st", 1000, 10)).await;
    assert!(bf.wait_for_stored(900, WAIT).await);
    f.settle(1000, WAIT).await;

    let (code, body) = get(&format!("{admin}/status")).await;
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(st["ledger"]["received"]["line_tcp"], 1000);
    assert_eq!(st["ledger"]["delivered"], bf.stored_count() as u64);
    assert_eq!(st["ledger"]["dropped"]["nan"], 100);
    assert_eq!(st["ledger"]["balanced"], true);
    assert_eq!(st["buffer"]["datapoints"], 0);
    assert_eq!(st["ready"], true);
    assert!(st["delivery"]["last_success_unix_seconds"].is_number());
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["auth"]["method"], "none");

    // What Prometheus asks for (the classic 0.0.4 format, for everyone else, is checked by
    // promtool in real_prometheus.rs).
    let r = reqwest::Client::new()
        .get(format!("{admin}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .expect("admin answers");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = r.text().await.expect("body");
    let samples = parse_metrics(&text);
    assert_eq!(
        value(
            &samples,
            "blueflood_forward_datapoints_received_total",
            &[("protocol", "line_tcp")]
        ),
        1000.0
    );
    assert_eq!(
        value(
            &samples,
            "blueflood_forward_datapoints_delivered_total",
            &[]
        ),
        900.0
    );
    assert_eq!(
        value(
            &samples,
            "blueflood_forward_datapoints_dropped_total",
            &[("reason", "nan")]
        ),
        100.0
    );
    assert_eq!(
        value(&samples, "blueflood_forward_buffered_datapoints", &[]),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "blueflood_forward_connections_accepted_total",
            &[]
        ),
        1.0
    );
    let requests = bf.requests().len() as f64;
    assert_eq!(
        value(
            &samples,
            "blueflood_forward_requests_total",
            &[("outcome", "ok")]
        ),
        requests
    );
    let histogram = samples
        .iter()
        .find(|s| {
            s.metric == "blueflood_forward_request_duration_seconds"
                && s.labels.get("status_class") == Some("2xx")
        })
        .expect("request duration histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().map(|b| b.count), Some(requests));
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // Conventions: prefix, `_total` on counters, base units in names.
    let mut types: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                types.insert(n.to_string(), t.to_string());
            }
        }
    }
    assert!(types.len() >= 20, "{types:?}");
    for (name, kind) in &types {
        assert!(name.starts_with("blueflood_forward_"), "{name}");
        assert!(
            !name.ends_with("_total"),
            "OpenMetrics names the family without _total: {name}"
        );
        assert!(
            !name.contains("millis") && !name.contains("_ms"),
            "base units: {name}"
        );
        if kind == "counter" {
            assert!(
                text.contains(&format!("\n{name}_total")),
                "{name} samples end in _total"
            );
        }
    }
    assert!(text.trim_end().ends_with("# EOF"));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_can_require_a_bearer_token_probes_never_do() {
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    cfg.admin.token = Some("scrape-token-123".to_string().into());
    let f = Forwarder::start(cfg).await;
    let admin = format!("http://{}", f.running.admin_addr());
    let client = reqwest::Client::new();
    for path in ["/status", "/metrics"] {
        for (token, want) in [
            (None, 401),
            (Some("wrong-token-123!"), 401),
            (Some("scrape-token-123"), 200),
        ] {
            let mut req = client.get(format!("{admin}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("answer");
            assert_eq!(r.status().as_u16(), want, "{path} with token {token:?}");
        }
    }
    assert_eq!(get(&format!("{admin}/livez")).await.0, 200);
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);
    f.stop().await;
}

/// Polls `/status` until `delivery.last_error` is set; returns the status document.
async fn wait_last_error(admin: &str) -> serde_json::Value {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, body) = get(&format!("{admin}/status")).await;
        assert_eq!(code, 200, "{body}");
        let s: serde_json::Value = serde_json::from_str(&body).expect("json");
        if !s["delivery"]["last_error"].is_null() {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "delivery.last_error still null after {WAIT:?}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_why_delivery_waits_on_keystone() {
    use blueflood_forward::config::settings::AuthSettings;
    use support::keystone::KeystoneDouble;
    const KEY: &str = "not-the-key-keystone-knows";
    let ks = KeystoneDouble::start("alice", "the-right-key").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let down = format!("http://{}/v2.0/tokens", closed.local_addr().expect("addr"));
    drop(closed);
    for (case, auth_url, cause) in [
        (
            "Keystone refuses the credentials",
            ks.url(),
            "identity service refused the credentials (HTTP 401)",
        ),
        ("Keystone is down", down, "identity service unreachable"),
    ] {
        let bf = BluefloodDouble::start().await;
        let mut cfg = settings(&bf.url());
        cfg.auth = Some(AuthSettings::new(
            "alice",
            KEY,
            auth_url.parse().expect("url"),
        ));
        cfg.shutdown_timeout = Duration::from_millis(200);
        let f = Forwarder::start(cfg).await;
        support::send_tcp(f.addr(Protocol::LineTcp), &lines("k", 10, 0)).await;
        let s = wait_last_error(&format!("http://{}", f.running.admin_addr())).await;
        let error = s["delivery"]["last_error"].as_str().expect("a string");
        assert!(error.contains(cause), "{case}: {s:#}");
        assert!(
            s["delivery"]["last_error_unix_seconds"].is_f64(),
            "{case}: {s:#}"
        );
        assert!(!s.to_string().contains(KEY), "{case}: the key shows: {s:#}");
        assert!(bf.requests().is_empty(), "{case}: sent without a token");
        f.running.shutdown();
        f.running.wait().await;
    }
}
