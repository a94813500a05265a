//! Load generator and counting Blueflood sink, for measuring the forwarder end to end.
//!
//! `loadgen sink --port P`: an HTTP server that answers every ingest POST with 200 and counts
//! the datapoints it received (it inflates gzip bodies and counts `"metricName"` keys rather
//! than parsing JSON, so the sink costs far less than what it measures). It prints the count
//! on `GET /count`.
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

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use tokio::io::AsyncWriteExt;

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
        Some("sink") => sink(arg(&args, "--port", 19000u16)).await,
        Some("send") => send(&args).await,
        _ => eprintln!(
            "usage: loadgen sink --port P | loadgen send (--pickle|--line) ADDR --points N --connections C [--rate R]"
        ),
    }
}

async fn sink(port: u16) {
    let count = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind sink");
    eprintln!("sink listening on {}", listener.local_addr().expect("addr"));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let count = count.clone();
                async move { Ok::<_, Infallible>(handle(req, &count).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

async fn handle(req: Request<hyper::body::Incoming>, count: &AtomicU64) -> Response<Full<Bytes>> {
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
    count.fetch_add(n as u64, Ordering::Relaxed);
    Response::new(Full::new(Bytes::new()))
}

/// A protocol-2 pickle frame as carbon-relay writes it.
fn pickle_frame(names: &[String], ts: f64, value: f64) -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'q', 0, b'('];
    let mut memo = 1u32;
    let mut put = |p: &mut Vec<u8>| {
        if memo < 256 {
            p.extend([b'q', memo as u8]);
        } else {
            p.push(b'r');
            p.extend(memo.to_le_bytes());
        }
        memo += 1;
    };
    for name in names {
        p.push(b'X');
        p.extend((name.len() as u32).to_le_bytes());
        p.extend(name.as_bytes());
        put(&mut p);
        p.push(b'G');
        p.extend(ts.to_be_bytes());
        p.push(b'G');
        p.extend(value.to_be_bytes());
        p.push(0x86);
        put(&mut p);
        p.push(0x86);
        put(&mut p);
    }
    p.extend([b'e', b'.']);
    let mut frame = (p.len() as u32).to_be_bytes().to_vec();
    frame.extend(p);
    frame
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
                    pickle_frame(&names, ts, sent as f64)
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
