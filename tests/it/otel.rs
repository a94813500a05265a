//! OpenTelemetry export checked against an in-process OTLP/HTTP receiver: the forwarder, run
//! as a child process with the standard `OTEL_*` environment, exports spans of its flushes and
//! Blueflood requests with batch size, status and retry count.

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use support::blueflood::BluefloodDouble;

const BIN: &str = env!("CARGO_BIN_EXE_blueflood-forward");

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

async fn receiver() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(r): State<Received>, body: Bytes| async move {
                if let Ok(v) = serde_json::from_slice(&body) {
                    r.lock().expect("lock").push(v);
                }
                "{}"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// Every span in the received OTLP/JSON documents: (name, attributes as key → JSON value).
fn spans(received: &Received) -> Vec<(String, serde_json::Map<String, serde_json::Value>)> {
    let mut out = Vec::new();
    for doc in received.lock().expect("lock").iter() {
        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let mut attrs = serde_json::Map::new();
                    for a in span["attributes"].as_array().into_iter().flatten() {
                        if let Some(k) = a["key"].as_str() {
                            attrs.insert(k.to_string(), a["value"].clone());
                        }
                    }
                    out.push((span["name"].as_str().unwrap_or("").to_string(), attrs));
                }
            }
        }
    }
    out
}

fn int(v: Option<&serde_json::Value>) -> Option<i64> {
    let v = v?.get("intValue")?;
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_and_requests_are_exported_as_spans() {
    let bf = BluefloodDouble::start().await;
    let (otlp, received) = receiver().await;
    let mut child = Command::new(BIN)
        .args(["-b", &bf.url(), "-i", "0.1", "--log-format", "json"])
        .args([
            "-e",
            "tcp:0:interface=127.0.0.1",
            "--line-endpoint",
            "tcp:0:interface=127.0.0.1",
        ])
        .args(["--admin-addr", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line_addr: Option<SocketAddr> = None;
    let mut line = String::new();
    while line_addr.is_none() {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read") > 0,
            "exited early"
        );
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "listening" && v["protocol"] == "line_tcp" {
            line_addr = v["addr"].as_str().and_then(|a| a.parse().ok());
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    });
    let ts = support::now_ms() / 1000;
    let body: String = (0..50).map(|i| format!("otel.{i} {i} {ts}\n")).collect();
    support::send_tcp(line_addr.expect("addr"), body.as_bytes()).await;
    assert!(bf.wait_for_stored(50, Duration::from_secs(20)).await);
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while !spans(&received)
        .iter()
        .any(|(n, _)| n == "blueflood.request")
    {
        assert!(tokio::time::Instant::now() < end, "no span exported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));

    let spans = spans(&received);
    let (_, req) = spans
        .iter()
        .find(|(n, _)| n == "blueflood.request")
        .expect("request span");
    assert_eq!(int(req.get("status")), Some(200), "{req:?}");
    assert_eq!(int(req.get("retry")), Some(0), "{req:?}");
    assert!(int(req.get("datapoints")).is_some_and(|n| n > 0), "{req:?}");
    let flushed: i64 = spans
        .iter()
        .filter(|(n, _)| n == "flush")
        .filter_map(|(_, a)| int(a.get("datapoints")))
        .sum();
    assert_eq!(flushed, 50, "every datapoint in a flush span");
}
