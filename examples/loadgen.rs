//! Load generator and counting Blueflood sink, for measuring the forwarder end to end.
//!
//! `loadgen sink --port P`: an HTTP server that answers every ingest POST with 200 and counts
//! the datapoints it received (it inflates gzip bodies and counts `"metricName"` keys rather
//! than parsing JSON, so the sink costs far less than what it measures). It prints the count
//! on `GET /count`.
//!
//! With `--max-rate R` it takes at most R datapoints per second in total (each answer waits for
//! its turn), to stand in for a Blueflood slower than the traffic.
//!
//! `loadgen idle --connect ADDR --connections N --hold S`: opens N TCP connections, sends
//! nothing, prints `connected N` once all are open, and holds them for S seconds.
//!
//! `loadgen line-sink --port P --http-port H`: a TCP server that counts newline-terminated lines
//! (what carbon-c-relay forwards in line mode); `loadgen pickle-sink --port P --http-port H`:
//! a TCP server that reads length-prefixed pickle frames and counts the datapoints in them
//! (what Graphite's carbon-relay forwards). Both print the count on `GET /count` on port H.
//!
//! `loadgen send --pickle ADDR --points N --connections C [--rate R]`: sends N datapoints as
//! Graphite's carbon-relay does (protocol 2 pickle, 500 points a frame) over C connections,
//! at R datapoints per second in total (0 = as fast as possible). `--line ADDR` sends the
//! plaintext protocol instead.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blueflood_forward::protocol::pickle::{PickleLimits, decode_frame};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/it/support/carbon_pickle.rs"]
mod carbon_pickle;

const POINTS_PER_FRAME: usize = 500;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arg_str(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => {
            let limit = RateLimit::new(arg(&args, "--max-rate", 0.0));
            sink_limited(arg(&args, "--port", 19000u16), Arc::default(), limit).await
        }
        Some("idle") => idle(&args).await,
        Some(mode @ ("line-sink" | "pickle-sink")) => {
            let count = Arc::<AtomicU64>::default();
            tokio::spawn(sink(arg(&args, "--http-port", 19001u16), count.clone()));
            tcp_sink(arg(&args, "--port", 19000u16), mode == "pickle-sink", count).await
        }
        Some("send") => send(&args).await,
        _ => eprintln!(
            "usage: loadgen sink --port P [--max-rate R] | loadgen (line-sink|pickle-sink) --port P --http-port H | loadgen idle --connect ADDR --connections N --hold S | loadgen send (--pickle|--line) ADDR --points N --connections C [--rate R]"
        ),
    }
}

/// At most `rate` datapoints per second over all requests (0 = no limit).
struct RateLimit {
    rate: f64,
    /// When the last reserved slot ends.
    next: std::sync::Mutex<Instant>,
}

impl RateLimit {
    fn new(rate: f64) -> Arc<Self> {
        Arc::new(Self {
            rate,
            next: std::sync::Mutex::new(Instant::now()),
        })
    }

    /// Waits until `n` datapoints fit under the rate.
    async fn take(&self, n: u64) {
        if self.rate <= 0.0 || n == 0 {
            return;
        }
        let until = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / self.rate);
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

async fn sink(port: u16, count: Arc<AtomicU64>) {
    sink_limited(port, count, RateLimit::new(0.0)).await
}

async fn sink_limited(port: u16, count: Arc<AtomicU64>, limit: Arc<RateLimit>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind sink");
    eprintln!("sink listening on {}", listener.local_addr().expect("addr"));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        let limit = limit.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let count = count.clone();
                let limit = limit.clone();
                async move { Ok::<_, Infallible>(handle(req, &count, &limit).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    count: &AtomicU64,
    limit: &RateLimit,
) -> Response<Full<Bytes>> {
    if req.method() == hyper::Method::GET {
        let n = count.load(Ordering::Relaxed);
        return Response::new(Full::new(Bytes::from(n.to_string())));
    }
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let Ok(body) = req.into_body().collect().await else {
        return Response::new(Full::new(Bytes::new()));
    };
    let body = body.to_bytes();
    let json = if gz {
        let mut out = Vec::with_capacity(body.len() * 8);
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
        out
    } else {
        body.to_vec()
    };
    let needle = b"\"metricName\"";
    let n = json.windows(needle.len()).filter(|w| w == needle).count();
    limit.take(n as u64).await;
    count.fetch_add(n as u64, Ordering::Relaxed);
    Response::new(Full::new(Bytes::new()))
}

/// Counts what a relay forwards over TCP: lines, or datapoints in pickle frames.
async fn tcp_sink(port: u16, pickle: bool, count: Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind tcp sink");
    eprintln!(
        "{} sink listening on {}",
        if pickle { "pickle" } else { "line" },
        listener.local_addr().expect("addr")
    );
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1 << 20);
            let mut chunk = vec![0u8; 1 << 16];
            let limits = PickleLimits::default();
            loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !pickle {
                    let lines = chunk[..n].iter().filter(|&&b| b == b'\n').count();
                    count.fetch_add(lines as u64, Ordering::Relaxed);
                    continue;
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() - at >= 4 {
                    let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
                        as usize;
                    if buf.len() - at - 4 < len {
                        break;
                    }
                    let mut points = Vec::new();
                    if decode_frame(&buf[at + 4..at + 4 + len], &limits, &mut points).is_ok() {
                        let good = points.iter().filter(|p| p.is_ok()).count();
                        count.fetch_add(good as u64, Ordering::Relaxed);
                    }
                    at += 4 + len;
                }
                buf.drain(..at);
            }
        });
    }
}

/// Opens connections that stay silent, for measuring what idle connections cost.
async fn idle(args: &[String]) {
    let addr: SocketAddr = arg_str(args, "--connect")
        .and_then(|a| a.parse().ok())
        .expect("--connect ADDR");
    let n: usize = arg(args, "--connections", 10_000);
    let hold: f64 = arg(args, "--hold", 10.0);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => conns.push(s),
            Err(e) => {
                eprintln!("connect failed after {} connections: {e}", conns.len());
                break;
            }
        }
    }
    println!("connected {}", conns.len());
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(conns);
}

async fn send(args: &[String]) {
    let (addr, pickle): (SocketAddr, bool) =
        match (arg_str(args, "--pickle"), arg_str(args, "--line")) {
            (Some(a), _) => (a.parse().expect("--pickle ADDR"), true),
            (None, Some(a)) => (a.parse().expect("--line ADDR"), false),
            _ => panic!("--pickle ADDR or --line ADDR"),
        };
    let total: u64 = arg(args, "--points", 1_000_000);
    let conns: u64 = arg(args, "--connections", 4).max(1);
    let rate: f64 = arg(args, "--rate", 0.0);
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as f64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let share = total / conns + u64::from(c < total % conns);
        let per_conn_rate = rate / conns as f64;
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut sent = 0u64;
            let t0 = Instant::now();
            while sent < share {
                let n = (share - sent).min(POINTS_PER_FRAME as u64) as usize;
                let names: Vec<String> = (0..n)
                    .map(|i| {
                        format!(
                            "loadgen.c{c}.host{:04}.cpu.metric{}",
                            (sent as usize + i) % 5000,
                            i % 7
                        )
                    })
                    .collect();
                let bytes = if pickle {
                    let points: Vec<(&str, f64, f64)> = names
                        .iter()
                        .map(|n| (n.as_str(), ts, sent as f64))
                        .collect();
                    carbon_pickle::pickle_frame(&points)
                } else {
                    names
                        .iter()
                        .map(|n| format!("{n} {sent} {ts}\n"))
                        .collect::<String>()
                        .into_bytes()
                };
                s.write_all(&bytes).await.expect("write");
                sent += n as u64;
                if per_conn_rate > 0.0 {
                    let due = Duration::from_secs_f64(sent as f64 / per_conn_rate);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            let _ = s.shutdown().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {total} datapoints in {secs:.3} s ({:.0}/s)",
        total as f64 / secs
    );
}
