//! Shared support for integration tests: the Blueflood and Keystone test doubles, a real
//! Keystone (`real_keystone`), and small helpers to feed the forwarder (carbon pickle frames,
//! raw TCP sends, clocks, compression, secret files rewritten as in production: `secrets`).
//! Each test crate uses a subset, hence the blanket `dead_code` allowance.

pub mod blueflood;
pub mod carbon_pickle;
pub mod keystone;
pub mod kube_cluster;
pub mod mimic;
pub mod real_keystone;
pub mod scrape;
pub mod secrets;

pub use carbon_pickle::pickle_frame;

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether a missing prerequisite must fail the test instead of skipping it: in CI (`CI` set to
/// `true` or `1`, as CI services do) or when `BFF_INTEROP_REQUIRED=1`.
pub fn prerequisites_required() -> bool {
    let set = |var: &str, values: &[&str]| {
        std::env::var(var).is_ok_and(|v| values.contains(&v.trim().to_ascii_lowercase().as_str()))
    };
    set("CI", &["true", "1"]) || set("BFF_INTEROP_REQUIRED", &["1"])
}

/// `test` cannot run because `why`. In CI that is a failure (a panic). Elsewhere the test
/// passes without running, and says so where the developer looks: `eprintln!` would be
/// captured by the test harness and shown only for failing tests, so the line is written to
/// the stderr handle itself, which the harness does not capture.
///
/// `BFF_SKIP` (a comma-separated list of test or module names) is a run saying it deliberately
/// leaves those tests to another job (GitHub's `rust` job leaves `image_e2e` to its
/// `image-check` job, the real programs' modules to `.ci/run`): they are skipped, visibly, even
/// in CI. A module name matches every test in it: libtest names the thread that runs a test
/// after its path (`real_mimic::check_...`), and a `#[tokio::test]` body runs on that thread.
pub fn prerequisite_missing(test: &str, why: &str) {
    let thread = std::thread::current();
    let path: Vec<&str> = thread.name().unwrap_or("").split("::").collect();
    let left_elsewhere = std::env::var("BFF_SKIP").is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|t| t == test || path.contains(&t))
    });
    assert!(
        left_elsewhere || !prerequisites_required(),
        "{test}: prerequisite missing (CI=true or BFF_INTEROP_REQUIRED=1 makes it required): {why}"
    );
    let line = format!("SKIPPED {test}: {why} (passes without running; required when CI=true)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Wall-clock now in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Wall-clock now in epoch seconds (what carbon timestamps are), as f64.
pub fn now_secs_f64() -> f64 {
    now_ms() as f64 / 1000.0
}

/// Wall-clock now in whole epoch seconds, as f64 (a carbon timestamp without a fraction).
pub fn now_whole_secs() -> f64 {
    (now_ms() / 1000) as f64
}

/// Reads until EOF or error; true if the server closed the connection within `within`.
pub async fn closed_by_server(s: &mut TcpStream, within: std::time::Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// `count` line-protocol points `{stem}.m{i} {i} {ts}`, one a line.
pub fn numbered_lines(stem: &str, count: usize, ts: f64) -> String {
    (0..count)
        .map(|i| format!("{stem}.m{i} {i} {ts}\n"))
        .collect()
}

/// Connects, writes all of `bytes`, then half-closes (shutdown write) so the server sees EOF.
/// It does not wait for the server to read: assert on effects with a wait-for helper.
pub async fn send_tcp(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream.shutdown().await.expect("shutdown write");
}

/// Carbon line protocol: one `name value timestamp\n` line per point `(name, ts, value)`.
pub fn line_payload(points: &[(&str, f64, f64)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, ts, value) in points {
        out.push_str(&format!("{name} {value} {ts}\n"));
    }
    out.into_bytes()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// zlib-wrapped deflate, which is what HTTP `Content-Encoding: deflate` means.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("deflate");
    enc.finish().expect("deflate")
}

/// Every record of every segment of a spool directory, oldest first, decoded with the
/// product's codec: `(segment path, offset, points)`. Panics on a damaged record.
pub fn spool_records(dir: &std::path::Path) -> Vec<(std::path::PathBuf, usize, usize)> {
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("read spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let mut out = Vec::new();
    for seg in segs {
        let bytes = std::fs::read(&seg).expect("read segment");
        let mut at = blueflood_forward::spool::store::MAGIC.len();
        while at < bytes.len() {
            let (rec, len) = blueflood_forward::spool::record::decode(&bytes[at..], 64 << 20)
                .expect("intact record");
            out.push((seg.clone(), at, rec.points.len()));
            at += len;
        }
    }
    out
}

/// Runs the forwarder binary with `args` to its exit, off the async runtime (the doubles a test
/// starts live on it), without the developer's `RUST_LOG`.
pub async fn run_binary(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_blueflood-forward"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run the forwarder binary")
    })
    .await
    .expect("join the blocking run")
}

/// A finished run's stdout and stderr as one text, for assertions and their messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
