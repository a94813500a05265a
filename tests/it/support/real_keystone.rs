//! A real OpenStack Keystone (PyPI `keystone`, in the virtualenv `scripts/real-keystone.sh`
//! makes) for the end-to-end tests: set up in a temporary directory (sqlite, fernet tokens
//! living a minute or less), served by gunicorn on 127.0.0.1, stopped and started again on
//! the same port with the same database and keys, killed with its whole process group on drop;
//! and [`KeystoneAdmin`], the admin side of its v3 API (users, projects, roles, password
//! changes, token validation) that the tests and the Blueflood double's real-Keystone mode use.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `[token] expiration` unless a test asks otherwise: short, so a test of about a minute sees
/// the forwarder refresh.
pub const TOKEN_LIFETIME_S: u64 = 60;
const ADMIN_PASSWORD: &str = "admin-bootstrap-pw";
/// Each `keystone-manage` step takes a few seconds; a hung one fails the test.
const MANAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Keystone answers `GET /v3` about 1.5-4 s after gunicorn starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The admin token is renewed when older than this (it lives `TOKEN_LIFETIME_S` too).
const ADMIN_TOKEN_REUSE: Duration = Duration::from_secs(20);

/// Where the virtualenv is (`BFF_KEYSTONE_VENV`, else `.cache/keystone-venv` in the crate),
/// or why it cannot be used.
pub fn venv() -> Result<PathBuf, String> {
    let dir = std::env::var_os("BFF_KEYSTONE_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/keystone-venv"),
        PathBuf::from,
    );
    for tool in ["keystone-manage", "gunicorn"] {
        if !dir.join("bin").join(tool).is_file() {
            return Err(format!(
                "no {tool} in {} (make it with `bash scripts/real-keystone.sh --venv-only`, \
                 or set BFF_KEYSTONE_VENV)",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

/// One Keystone server and its state directory.
pub struct RealKeystone {
    venv: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The gunicorn master, leader of its own process group (its workers are in it).
    server: Option<std::process::Child>,
    admin: Arc<KeystoneAdmin>,
}

impl Drop for RealKeystone {
    fn drop(&mut self) {
        // A failing test shows what Keystone said before its directory goes.
        if std::thread::panicking() {
            use std::io::Write;
            let _ = std::io::stderr().write_all(self.log_tail().as_bytes());
        }
        if let Some(mut c) = self.server.take() {
            signal_group(c.id(), "KILL");
            let _ = c.wait();
        }
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn id_name(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl RealKeystone {
    /// Sets up a fresh Keystone (database, fernet and credential keys, the bootstrap admin)
    /// and serves it. Blocking (tens of seconds): call it off the runtime or with
    /// `spawn_blocking`.
    pub fn start(venv: &Path, token_lifetime_s: u64) -> RealKeystone {
        let dir = tempfile::tempdir().expect("keystone tempdir");
        let port = free_port();
        let d = dir.path();
        let conf = d.join("keystone.conf");
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\nlog_file = {log}\n\
                 [identity]\npassword_hash_rounds = 4\n\
                 [database]\nconnection = sqlite:///{db}\n\
                 [token]\nprovider = fernet\nexpiration = {token_lifetime_s}\n\
                 [fernet_tokens]\nkey_repository = {fernet}\n\
                 [credential]\nkey_repository = {cred}\n",
                log = d.join("keystone.log").display(),
                db = d.join("keystone.db").display(),
                fernet = d.join("fernet").display(),
                cred = d.join("cred").display(),
            ),
        )
        .expect("write keystone.conf");
        // bcrypt's cheapest cost (4, not 12): a login costs milliseconds instead of most of a
        // second of a CPU the whole suite shares; what is tested does not depend on it.
        // One sync worker: requests are served one at a time, so sqlite is never written by
        // two processes at once (two workers answered a login 500 under the concurrent cases).
        // Keystone hands sys.argv to oslo.config, which refuses gunicorn's flags: every
        // gunicorn setting lives here and gunicorn runs without arguments.
        std::fs::write(
            d.join("gunicorn.conf.py"),
            format!(
                "bind = \"127.0.0.1:{port}\"\nworkers = 1\n\
                 wsgi_app = \"keystone.wsgi.api:application\"\n\
                 pidfile = \"{pid}\"\nerrorlog = \"{err}\"\ntimeout = 60\n",
                pid = d.join("gunicorn.pid").display(),
                err = d.join("gunicorn.log").display(),
            ),
        )
        .expect("write gunicorn.conf.py");
        let (user, group) = (id_name("-un"), id_name("-gn"));
        let public = format!("http://127.0.0.1:{port}/v3");
        let steps: [Vec<&str>; 4] = [
            vec!["db_sync"],
            vec![
                "fernet_setup",
                "--keystone-user",
                &user,
                "--keystone-group",
                &group,
            ],
            vec![
                "credential_setup",
                "--keystone-user",
                &user,
                "--keystone-group",
                &group,
            ],
            vec![
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-public-url",
                &public,
            ],
        ];
        for step in steps {
            manage(venv, &conf, &step, d);
        }
        let admin = Arc::new(KeystoneAdmin::new(&public));
        let mut ks = RealKeystone {
            venv: venv.to_path_buf(),
            dir,
            port,
            server: None,
            admin,
        };
        ks.serve();
        ks
    }

    /// Starts gunicorn (same port, database and keys as before) and waits until `GET /v3`
    /// answers.
    pub fn serve(&mut self) {
        assert!(self.server.is_none(), "keystone is already running");
        let d = self.dir.path();
        let child = Command::new(self.venv.join("bin/gunicorn"))
            .current_dir(d)
            .env("OS_KEYSTONE_CONFIG_FILES", d.join("keystone.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn gunicorn");
        self.server = Some(child);
        let url = format!("http://127.0.0.1:{}/v3", self.port);
        let end = Instant::now() + READY_TIMEOUT;
        loop {
            let ok = blocking_get(&url).is_ok_and(|status| status == 200);
            if ok {
                return;
            }
            if let Some(c) = self.server.as_mut()
                && let Ok(Some(exit)) = c.try_wait()
            {
                panic!(
                    "gunicorn exited ({exit}) before Keystone answered; its log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < end,
                "Keystone not answering GET {url} {READY_TIMEOUT:?} after start; gunicorn log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to gunicorn's process group, then waits (bounded) for the master to exit and
    /// the port to refuse connections.
    pub fn stop(&mut self) {
        let Some(mut c) = self.server.take() else {
            return;
        };
        signal_group(c.id(), "TERM");
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if c.try_wait().expect("try_wait gunicorn").is_some() {
                break;
            }
            if Instant::now() > end {
                signal_group(c.id(), "KILL");
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < end,
                "port {} still accepts 10 s after gunicorn stopped",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The v3 token URL, what the forwarder's `--auth-url` must be.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/v3/auth/tokens", self.port)
    }

    pub fn admin(&self) -> Arc<KeystoneAdmin> {
        self.admin.clone()
    }

    /// The last lines of gunicorn's and Keystone's logs, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["gunicorn.log", "keystone.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name} ---\n"));
            out.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
            out.push('\n');
        }
        out
    }
}

/// One `keystone-manage` step, bounded; panics with its output when it fails.
fn manage(venv: &Path, conf: &Path, args: &[&str], dir: &Path) {
    let mut child = Command::new(venv.join("bin/keystone-manage"))
        .arg("--config-file")
        .arg(conf)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keystone-manage");
    let end = Instant::now() + MANAGE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait keystone-manage") {
            let out = child.wait_with_output().expect("keystone-manage output");
            assert!(
                status.success(),
                "keystone-manage {args:?}: {status}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keystone-manage {args:?} still running after {MANAGE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET without a runtime (the readiness probe runs on a plain thread): status code only.
fn blocking_get(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: std::net::SocketAddr = host.parse().map_err(std::io::Error::other)?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text}")))
}

/// A user made for one test case: its ids and the project it has the `member` role on.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub id: String,
    pub project_id: String,
}

/// The admin side of Keystone's v3 API, as the bootstrap admin (scoped to project `admin`).
pub struct KeystoneAdmin {
    base: String,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl KeystoneAdmin {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("reqwest client"),
            token: Mutex::new(None),
        }
    }

    /// A password login, as the forwarder makes it; `Ok(token)` on 201, else the status.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        project_id: Option<&str>,
    ) -> Result<String, u16> {
        let mut body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}}}});
        if let Some(p) = project_id {
            body["auth"]["scope"] = json!({"project": {"id": p}});
        }
        self.post_login(body).await
    }

    async fn post_login(&self, body: Value) -> Result<String, u16> {
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|_| 0u16)?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(status);
        }
        resp.headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(status)
    }

    /// The admin's token, renewed when old (it expires like every token here).
    async fn admin_token(&self, renew: bool) -> String {
        self.admin_token_checked(renew)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.base))
    }

    /// One admin request; `expect` is the status it must answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let token = self.admin_token(false).await;
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A user `name` with `password` in domain Default, a project of its own and the `member`
    /// role on it (no default project: an unscoped login gets an unscoped token).
    pub async fn service_user(&self, name: &str, password: &str) -> ServiceUser {
        use reqwest::Method;
        let project = self
            .call(
                Method::POST,
                "/projects",
                Some(
                    json!({"project": {"name": format!("{name}-project"), "domain_id": "default"}}),
                ),
                201,
            )
            .await;
        let project_id = str_at(&project, "/project/id");
        let user = self
            .call(
                Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
                201,
            )
            .await;
        let id = str_at(&user, "/user/id");
        let roles = self
            .call(Method::GET, "/roles?name=member", None, 200)
            .await;
        let role = str_at(&roles, "/roles/0/id");
        self.call(
            Method::PUT,
            &format!("/projects/{project_id}/users/{id}/roles/{role}"),
            None,
            204,
        )
        .await;
        ServiceUser {
            name: name.to_owned(),
            id,
            project_id,
        }
    }

    /// Changes the user's password (Keystone revokes every token the user has, including
    /// those issued in the same wall-clock second).
    pub async fn set_password(&self, user: &ServiceUser, password: &str) {
        self.call(
            reqwest::Method::PATCH,
            &format!("/users/{}", user.id),
            Some(json!({"user": {"password": password}})),
            200,
        )
        .await;
    }

    /// Whether Keystone takes `token` as valid now: `Ok(Some(project id or ""))` when it does,
    /// `Ok(None)` when it does not (404: expired, revoked or unknown), `Err` when Keystone
    /// cannot say (unreachable, 5xx).
    pub async fn validate(&self, token: &str) -> Result<Option<String>, String> {
        for renew in [false, true] {
            let admin = self.admin_token_checked(renew).await?;
            let resp = self
                .http
                .get(format!("{}/auth/tokens", self.base))
                .header("x-auth-token", admin)
                .header("x-subject-token", token)
                .send()
                .await
                .map_err(|e| format!("keystone unreachable: {e}"))?;
            match resp.status().as_u16() {
                200 => {
                    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                    let project = v
                        .pointer("/token/project/id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    return Ok(Some(project.to_owned()));
                }
                404 => return Ok(None),
                // The admin token itself expired or was refused: renew it once.
                401 if !renew => continue,
                s => return Err(format!("keystone answered {s} to a token validation")),
            }
        }
        Err("the admin token was refused twice".to_owned())
    }

    /// [`Self::admin_token`] that reports an unreachable Keystone instead of panicking.
    async fn admin_token_checked(&self, renew: bool) -> Result<String, String> {
        if !renew
            && let Some((t, at)) = self.token.lock().expect("admin token").clone()
            && at.elapsed() < ADMIN_TOKEN_REUSE
        {
            return Ok(t);
        }
        let body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let t = self
            .post_login(body)
            .await
            .map_err(|s| format!("admin login: HTTP {s}"))?;
        *self.token.lock().expect("admin token") = Some((t.clone(), Instant::now()));
        Ok(t)
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
        .to_owned()
}
