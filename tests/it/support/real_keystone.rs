//! A real OpenStack Keystone (PyPI `keystone`, in the virtualenv `scripts/real-keystone.sh`
//! makes) for the end-to-end tests: set up in a temporary directory (sqlite, fernet tokens
//! living a minute or less), served by gunicorn on 127.0.0.1, stopped and started again on
//! the same port with the same database and keys, killed with its whole process group on drop;
//! and [`KeystoneAdmin`], the admin side of its v3 API (users, projects, roles, password
//! changes, token validation; in `admin.rs`) that the tests and the Blueflood double use.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admin;

pub use admin::{KeystoneAdmin, ServiceUser};

/// `[token] expiration` unless a test asks otherwise: short, so a test of about a minute sees
/// the forwarder refresh.
pub const TOKEN_LIFETIME_S: u64 = 60;
/// The bootstrap admin's password (`keystone-manage bootstrap`), for `admin`.
const ADMIN_PASSWORD: &str = "admin-bootstrap-pw";
/// Each `keystone-manage` step takes a few seconds; a hung one fails the test.
const MANAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Keystone answers `GET /v3` about 1.5-4 s after gunicorn starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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
