//! Rackspace's own identity mock, PyPI `mimic`, as a real child process for `real_mimic`:
//! found through `BFF_MIMIC_VENV` (or `.cache/mimic-venv`, which `scripts/real-mimic.sh`
//! makes), started with `twistd -n mimic` on a free 127.0.0.1 port (read from its
//! "Site starting on PORT" line), bounded wait until it answers, killed by pid on drop.
//!
//! Its control API, as mimic 2.2.0's source has it (`mimic/resource.py`,
//! `mimic/model/behaviors.py`, `mimic/rest/identity_api.py`): `POST
//! /mimic/v1.1/IdentityControlAPI/behaviors/auth` with `{"criteria":[{"username":REGEX}],
//! "name":"fail","parameters":{"code":401,...}}` answers 201 `{"id":UUID}`, after which every
//! login whose user name matches fails so; `DELETE .../behaviors/auth/UUID` (204) ends it.
//! Logins are counted from mimic's own access log (one line a request, with status and
//! User-Agent), not from the forwarder's view of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long mimic may take to load its plugins and answer (about 1.5 s here; the first start
/// of a fresh virtualenv also writes Twisted's plugin cache).
const START_WAIT: Duration = Duration::from_secs(60);
/// Every control or probe request to mimic is bounded by this.
const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// The virtualenv holding mimic, if there is one with `bin/twistd` in it.
pub fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("BFF_MIMIC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/mimic-venv"));
    dir.join("bin/twistd").is_file().then_some(dir)
}

/// Logins seen in mimic's access log, by status, from one User-Agent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Logins {
    pub ok: usize,
    pub refused: usize,
    pub other: usize,
}

pub struct Mimic {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    markers: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

impl Drop for Mimic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mimic {
    /// Starts `twistd -n mimic` from `venv` on 127.0.0.1 and waits (bounded) until it answers.
    pub async fn start(venv: &Path) -> Mimic {
        // twistd's working directory: it would write twistd.pid there without `--pidfile=`,
        // and two mimics sharing one would refuse to start.
        let dir = tempfile::tempdir().expect("mimic tempdir");
        let mut child = Command::new(venv.join("bin/twistd"))
            .args([
                "--nodaemon",
                "--pidfile=",
                "mimic",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ])
            .current_dir(dir.path())
            .env("PYTHONUNBUFFERED", "1")
            // mimic's `expires` is local time with a fixed `-05:00` label: one zone makes it
            // one known instant (now + 29 h).
            .env("TZ", "UTC")
            // mimic 2.2.0 on Python 3.11 warns on import (attrs' zope support, utcfromtimestamp):
            // noise, not failures.
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}/bin/twistd mimic: {e}", venv.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        // One thread per pipe reads it to the end, so mimic never blocks on a full pipe; stdout
        // (twistd's log, -n) also reports the port.
        for (pipe, tx) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
                Some(tx),
            ),
            (Box::new(child.stderr.take().expect("stderr")), None),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(port) = line
                        .split_once("Site starting on ")
                        .and_then(|(_, p)| p.trim().parse::<u16>().ok())
                        && let Some(tx) = &tx
                    {
                        let _ = tx.send(port);
                    }
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let mut mimic = Mimic {
            child,
            port: 0,
            log,
            http: reqwest::Client::builder()
                .timeout(REQUEST_WAIT)
                .build()
                .expect("http client"),
            markers: Default::default(),
            _dir: dir,
        };
        let end = Instant::now() + START_WAIT;
        mimic.port =
            tokio::task::block_in_place(|| rx.recv_timeout(START_WAIT)).unwrap_or_else(|_| {
                panic!(
                    "mimic did not say which port it listens on within {START_WAIT:?}; log:\n{}",
                    mimic.log_tail(40)
                )
            });
        loop {
            match mimic.http.get(mimic.base_url() + "/").send().await {
                Ok(r) if r.status().is_success() => break,
                other => {
                    if Instant::now() > end {
                        panic!(
                            "mimic on port {} not answering GET / within {START_WAIT:?} ({other:?}); log:\n{}",
                            mimic.port,
                            mimic.log_tail(40)
                        );
                    }
                    if let Ok(Some(status)) = mimic.child.try_wait() {
                        panic!("mimic exited ({status}); log:\n{}", mimic.log_tail(40));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        mimic
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where a Rackspace v2 client logs in (`--auth-url`).
    pub fn auth_url(&self) -> String {
        self.base_url() + "/identity/v2.0/tokens"
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Logs `user` in with an API key, as a client would; returns `(status, token)`. mimic
    /// keeps one session per user name, so this is the token every login of `user` gets.
    pub async fn login(&self, user: &str, api_key: &str) -> (u16, Option<String>) {
        let body = serde_json::json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {
            "username": user, "apiKey": api_key}}});
        let r = self
            .http
            .post(self.auth_url())
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {}: {e}", self.auth_url()));
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let token = v
            .pointer("/access/token/id")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        (status, token)
    }

    /// From now on every login of a user name matching `user_regex` is answered `code` with
    /// mimic's own failure body. Returns the behaviour's id, for [`Mimic::remove_behavior`].
    pub async fn fail_logins(&self, user_regex: &str, code: u16) -> String {
        let url = self.base_url() + "/mimic/v1.1/IdentityControlAPI/behaviors/auth";
        let body = serde_json::json!({
            "criteria": [{"username": user_regex}],
            "name": "fail",
            "parameters": {"code": code, "message": "injected by the test"},
        });
        let r = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(r.status().as_u16(), 201, "mimic refused the behaviour");
        let v: serde_json::Value = r.json().await.expect("behaviour answer is JSON");
        v["id"].as_str().expect("behaviour id").to_owned()
    }

    /// Ends a behaviour made by [`Mimic::fail_logins`].
    pub async fn remove_behavior(&self, id: &str) {
        let url = format!(
            "{}/mimic/v1.1/IdentityControlAPI/behaviors/auth/{id}",
            self.base_url()
        );
        let r = self
            .http
            .delete(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
        assert_eq!(
            r.status().as_u16(),
            204,
            "mimic did not remove behaviour {id}"
        );
    }

    /// The logins (`POST /identity/v2.0/tokens`) mimic has answered so far for clients whose
    /// User-Agent starts with `agent`, counted from its access log. A marker request is sent
    /// first and waited for in the log (bounded), so every request answered before the call
    /// is counted.
    pub async fn logins(&self, agent: &str) -> Logins {
        let n = self
            .markers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("/mimic/v1.0/presets?marker={n}");
        let r = self
            .http
            .get(self.base_url() + &marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {marker}: {e}"));
        assert!(r.status().is_success(), "mimic presets: {}", r.status());
        let quoted = format!("\"GET {marker} HTTP/1.1\"");
        let end = Instant::now() + REQUEST_WAIT;
        loop {
            let lines = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if lines.iter().any(|l| l.contains(&quoted)) {
                return count_logins(&lines, agent);
            }
            if Instant::now() > end {
                panic!(
                    "mimic's access log never showed {marker} within {REQUEST_WAIT:?}; log:\n{}",
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Twisted's combined log format: `"POST /identity/v2.0/tokens HTTP/1.1" 401 54 "-" "agent"`.
fn count_logins(lines: &[String], agent: &str) -> Logins {
    let mut out = Logins::default();
    let request = "\"POST /identity/v2.0/tokens HTTP/1.1\" ";
    for line in lines {
        let Some((_, rest)) = line.split_once(request) else {
            continue;
        };
        if !line.contains(&format!("\"{agent}")) {
            continue;
        }
        match rest.split(' ').next() {
            Some("200") => out.ok += 1,
            Some("401") => out.refused += 1,
            _ => out.other += 1,
        }
    }
    out
}
