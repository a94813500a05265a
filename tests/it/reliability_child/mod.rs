//! The forwarder as a real child process for the reliability suites: spawned with JSON logs on
//! ephemeral loopback ports (read from its "listening" log lines), its admin `/status` and
//! `/metrics` read over HTTP, bounded waits that fail with the case name, the status document
//! and the log tail, SIGTERM and a clean stop, and the forwarder behind a Keystone double.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::blueflood::BluefloodDouble;
use crate::support::keystone::KeystoneDouble;
use crate::support::secrets::write_secret;

pub const BIN: &str = env!("CARGO_BIN_EXE_blueflood-forward");

/// Defaults for a fast test forwarder; `spawn`'s extra arguments replace a default of the same
/// flag (clap refuses a flag given twice).
const DEFAULTS: &[(&str, &str)] = &[
    ("-e", "tcp:0:interface=127.0.0.1"),
    ("--line-endpoint", "tcp:0:interface=127.0.0.1"),
    ("--udp-endpoint", "udp:0:interface=127.0.0.1"),
    ("-i", "0.05"),
    ("-p", "pre"),
    ("-t", "t1"),
    ("--retry-initial", "0.01"),
    ("--retry-max", "0.5"),
    ("--connect-timeout", "1"),
    ("--request-timeout", "2"),
    ("--shutdown-timeout", "20"),
    ("--log-format", "json"),
    ("--log-level", "info"),
    ("--admin-addr", "127.0.0.1:0"),
];

pub struct Child {
    pub case: String,
    child: std::process::Child,
    pub pickle: SocketAddr,
    pub line: SocketAddr,
    pub udp: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary against `blueflood_url` with the defaults above, `extra` replacing any
/// default flag it names. Blocks (bounded) until every listener and the admin server listen.
pub fn spawn(case: &str, blueflood_url: &str, extra: &[&str]) -> Child {
    spawn_command(case, Command::new(BIN), blueflood_url, extra)
}

/// [`spawn`] through `command`, a program that runs the forwarder with the arguments appended
/// to it (`podman run ... IMAGE`, for the container image).
pub fn spawn_command(
    case: &str,
    mut command: Command,
    blueflood_url: &str,
    extra: &[&str],
) -> Child {
    let mut args: Vec<String> = vec!["-b".into(), blueflood_url.into()];
    for (flag, value) in DEFAULTS {
        if !extra.contains(flag) {
            args.push((*flag).into());
            args.push((*value).into());
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = command
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{case}: spawn {command:?}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<(String, String)>();
    let log2 = log.clone();
    // One thread reads stderr to the end: it reports the listening addresses and keeps every
    // line (so the child never blocks on a full pipe, and failures can show the log).
    let drain = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let msg = v["message"].as_str().unwrap_or_default();
                let addr = v["addr"].as_str().unwrap_or_default().to_string();
                if msg == "listening" {
                    let p = v["protocol"].as_str().unwrap_or_default().to_string();
                    let _ = tx.send((p, addr));
                } else if msg == "admin server listening" {
                    let _ = tx.send(("admin".into(), addr));
                }
            }
            log2.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let mut found = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(20);
    while found.len() < 4 {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((k, a)) => {
                found.insert(k, a.parse::<SocketAddr>().expect("addr"));
            }
            Err(_) => panic!(
                "{case}: forwarder not listening after 20 s (args {args:?}); log:\n{}",
                log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
            ),
        }
    }
    Child {
        case: case.to_string(),
        child,
        pickle: found["pickle"],
        line: found["line_tcp"],
        udp: found["line_udp"],
        admin: found["admin"],
        log,
        drain: Some(drain),
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log[log.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// GET `path` from the admin server; returns the body.
    pub async fn admin_get(&self, path: &str) -> String {
        http_get(self.admin, path)
            .await
            .unwrap_or_else(|e| panic!("{}: GET {path}: {e}", self.case))
    }

    pub async fn status(&self) -> serde_json::Value {
        let body = self.admin_get("/status").await;
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: /status is not JSON ({e}): {body}", self.case))
    }

    /// `/metrics` as `series -> value`, the series written as in the exposition
    /// (`name{label="v"}`); `_total` suffixes kept.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let body = self.admin_get("/metrics").await;
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Polls `/status` until `f` holds, or panics naming the case, `what`, the last status and
    /// the log tail.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + timeout;
        loop {
            let s = self.status().await;
            if f(&s) {
                return s;
            }
            if Instant::now() > end {
                panic!(
                    "{}: timed out after {timeout:?} waiting for {what}; /status: {s:#}\nlog tail:\n{}",
                    self.case,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `received` points have arrived and nothing waits for room, is buffered or in
    /// flight, and the ledger balances; returns the status.
    pub async fn settle(&self, received: u64, timeout: Duration) -> serde_json::Value {
        self.wait_status(
            timeout,
            &format!("{received} received and quiescent"),
            |s| {
                let l = &s["ledger"];
                l["received_total"].as_u64() >= Some(received)
                    && n(&l["waiting_for_room"]) == 0
                    && l["buffered"] == 0
                    && l["in_flight"] == 0
                    && l["balanced"] == true
            },
        )
        .await
    }

    /// Settles (see [`Child::settle`]), then stops with exit 0 (see [`Child::stop`]); returns
    /// the settled status.
    pub async fn close_books(self, received: u64, timeout: Duration) -> serde_json::Value {
        let s = self.settle(received, timeout).await;
        self.stop(Duration::from_secs(30)).await;
        s
    }

    /// SIGKILL: no drain, no flush, no fsync — a crash.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "{}: kill -TERM failed", self.case);
    }

    /// Waits (bounded) for the process to exit; returns its exit code and the fields of its
    /// final "stopped" log line (received, delivered, dropped).
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> (Option<i32>, Option<serde_json::Value>) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > end {
                panic!(
                    "{}: still running {timeout:?} after SIGTERM; log tail:\n{}",
                    self.case,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let stopped = self.log_lines().iter().rev().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "stopped").then_some(v)
        });
        (status.code(), stopped)
    }

    /// SIGTERM, then waits (bounded) for exit 0; returns the fields of the final "stopped"
    /// log line.
    pub async fn stop(mut self, timeout: Duration) -> Option<serde_json::Value> {
        self.sigterm();
        let (code, stopped) = self.wait_exit(timeout).await;
        assert_eq!(
            code,
            Some(0),
            "{}: exit code after SIGTERM; log tail:\n{}",
            self.case,
            self.log_tail(20)
        );
        stopped
    }

    /// VmRSS of the child in bytes, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close` (content-length or chunked bodies).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other(format!("no header end: {text}")))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("answer: {head}")));
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            let mut out = String::new();
            let mut rest = body;
            loop {
                let (size, after) = rest.split_once("\r\n").unwrap_or(("0", ""));
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                out.push_str(&after[..n.min(after.len())]);
                rest = after.get(n + 2..).unwrap_or("");
            }
            return Ok(out);
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| std::io::Error::other("admin request timed out after 10 s"))?
}

/// Sends `batches` batches of `per_batch` line-protocol points, each batch on its own
/// connection (the carbon sender reconnecting), `gap` apart. Names are `{stem}.b{b}.m{i}`,
/// timestamps now, value `b * per_batch + i`. Returns the number sent.
pub async fn line_load(
    addr: SocketAddr,
    stem: &str,
    batches: usize,
    per_batch: usize,
    gap: Duration,
) -> u64 {
    let mut sent = 0;
    for b in 0..batches {
        let ts = crate::support::now_ms() / 1000;
        let mut text = String::with_capacity(per_batch * 40);
        for i in 0..per_batch {
            text.push_str(&format!("{stem}.b{b}.m{i} {} {ts}\n", b * per_batch + i));
        }
        crate::support::send_tcp(addr, text.as_bytes()).await;
        sent += per_batch as u64;
        tokio::time::sleep(gap).await;
    }
    sent
}

/// A series of [`Child::metrics`] named without its `blueflood_forward_` prefix, as u64 (0
/// when absent).
pub fn metric(m: &HashMap<String, f64>, series: &str) -> u64 {
    m.get(&format!("blueflood_forward_{series}"))
        .copied()
        .unwrap_or(f64::NAN) as u64
}

/// A Keystone double accepting alice/k1, a Blueflood double that wants its tokens, and the
/// forwarder reading the key from `<dir>/key` (holding k1), with `extra` arguments.
pub async fn behind_keystone(
    case: &str,
    extra: &[&str],
) -> (KeystoneDouble, BluefloodDouble, tempfile::TempDir, Child) {
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    write_secret(&key, "k1");
    let key_s = key.display().to_string();
    let url = ks.url();
    let mut args = vec!["-u", "alice", "--key-file", &key_s, "--auth-url", &url];
    args.extend_from_slice(extra);
    let c = spawn(case, &bf.url(), &args);
    (ks, bf, dir, c)
}

/// A value of the status document as u64 (0 when absent), for reasons and counters.
pub fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}
