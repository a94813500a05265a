//! Helpers for `auth_edges`: the forwarder binary run to its exit, its peak memory watched
//! (and the child killed before an unbounded read can take the machine down), FIFOs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::reliability_child::BIN;

pub const MIB: u64 = 1024 * 1024;

pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// VmHWM (peak resident set) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Samples the child's peak RSS every few milliseconds until dropped; `exceeded` turns true
/// (and the child is killed, so an unbounded read cannot take the machine down) as soon as it
/// passes `bound`.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    pub exceeded: Arc<AtomicBool>,
}

impl RssWatch {
    pub fn start(pid: u32, bound: u64) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let exceeded = Arc::new(AtomicBool::new(false));
        let (s, e) = (stop.clone(), exceeded.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    return;
                };
                let hwm = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024;
                if hwm > bound {
                    e.store(true, Ordering::SeqCst);
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssWatch { stop, exceeded }
    }

    pub fn assert_within(&self, case: &str, bound: u64) {
        assert!(
            !self.exceeded.load(Ordering::SeqCst),
            "{case}: peak RSS passed {} MiB (the child was killed)",
            bound / MIB
        );
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Polls `f` every 20 ms until it holds; panics with `what` after `timeout` (a failsafe, not a
/// timing assertion).
pub async fn until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the binary with `args` (plus a Blueflood URL that is never reached) and returns its
/// exit code and stderr. The deadline is a failsafe against a hang, not a timing bound.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["-b", "http://127.0.0.1:9", "--admin-addr", "127.0.0.1:0"])
        .args(["-e", "tcp:0:interface=127.0.0.1"])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after 30 s (hangs on a file?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (status.code(), err)
}
