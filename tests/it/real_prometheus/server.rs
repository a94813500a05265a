//! A real Prometheus for `real_prometheus`: started on a loopback port with its own storage
//! and a generated configuration, its HTTP API queried, stopped by pid (and killed on drop, so
//! a failing assertion leaves nothing running).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// A child killed on drop until it is taken.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_some())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A real Prometheus on a loopback port, with its own storage; killed on drop, so a failing
/// assertion leaves nothing running.
pub struct Prometheus {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `bin` with `config` (YAML), retrying on another port if the one picked was taken
    /// in between; waits (bounded) for `/-/ready`.
    pub async fn start(bin: &Path, config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write config");
        let log = dir.path().join("prometheus.log");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port();
            let out = std::fs::File::create(&log).expect("log");
            let mut child = KillOnDrop(Some(
                Command::new(bin)
                    .arg(format!("--config.file={}", cfg.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().expect("log"))
                    .stderr(out)
                    .spawn()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display())),
            ));
            let url = format!("http://127.0.0.1:{port}");
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = http.get(format!("{url}/-/ready")).send().await
                    && r.status().is_success()
                {
                    let child = child.0.take().expect("child");
                    return Prometheus {
                        child,
                        url,
                        http,
                        log,
                        _dir: dir,
                    };
                }
                if child.exited() {
                    break; // most likely the port was taken in between: another one
                }
                assert!(
                    Instant::now() < end,
                    "Prometheus not ready after 30 s; log:\n{}",
                    log_text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            eprintln!("Prometheus exited at start; log:\n{}", log_text());
        }
        panic!(
            "Prometheus did not start on three ports; log:\n{}",
            log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prometheus {path}: {e}"));
        let v: serde_json::Value = r.json().await.expect("Prometheus answers JSON");
        assert_eq!(v["status"], "success", "{path} {query:?}: {v:#}");
        v["data"].clone()
    }

    /// An instant query's result: one `(labels, value)` per series.
    pub async fn query(&self, q: &str) -> Vec<(serde_json::Value, f64)> {
        let data = self.api("/api/v1/query", &[("query", q)]).await;
        data["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let v = s["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("number");
                (s["metric"].clone(), v)
            })
            .collect()
    }

    /// The one value of `q`, or a panic showing what came back.
    pub async fn scalar(&self, q: &str) -> f64 {
        let r = self.query(q).await;
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r[0].1
    }

    /// Waits (bounded) until `job` has been scraped after `after` (seconds since the epoch):
    /// the timestamp of its `up` sample is the scrape's start, so the values of that scrape were
    /// read after `after`. Prometheus may move a scrape's timestamp onto its schedule by a few
    /// milliseconds, hence the margin (it costs at most one more scrape).
    pub async fn scraped_since(&self, job: &str, after: f64) {
        let after = after + 0.05;
        let q = format!("timestamp(up{{job=\"{job}\"}})");
        let end = Instant::now() + WAIT;
        loop {
            let r = self.query(&q).await;
            if r.first().is_some_and(|(_, t)| *t >= after) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{job}: no scrape after {after} within {WAIT:?} (last: {r:?}); targets: {:#}\nlog:\n{}",
                self.api("/api/v1/targets", &[]).await,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM by pid and a bounded wait for a clean exit.
    pub async fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -TERM prometheus");
        let end = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < end,
                "Prometheus still running 30 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn scrape_job(name: &str, target: SocketAddr, credentials: Option<&Path>) -> String {
    let auth = credentials.map_or(String::new(), |p| {
        format!(
            "    authorization:\n      credentials_file: {}\n",
            p.display()
        )
    });
    format!("  - job_name: {name}\n{auth}    static_configs:\n      - targets: ['{target}']\n")
}
