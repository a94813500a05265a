//! Child processes for the test cluster: a process killed by pid on drop with its output in a
//! file, and tools (kubectl, etcdctl, helm, openssl) run to their end within a bound.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Every kubectl, etcdctl, helm or openssl run is bounded by this.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A child process killed (SIGKILL) and reaped on drop, its output in a log file.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    /// The last `n` lines of its output, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{} ({}):\n{}",
            self.name,
            self.log.display(),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago (etcd and the API server take no port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Runs `cmd` to its end, at most [`TOOL_TIMEOUT`]; panics with its output when it fails or
/// hangs. Returns stdout.
pub fn run_ok(what: &str, cmd: Command) -> String {
    let out = run(what, cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` to its end, at most [`TOOL_TIMEOUT`] (killed by pid after that); any exit code.
pub fn run(what: &str, cmd: Command) -> Output {
    run_within(what, cmd, TOOL_TIMEOUT)
}

/// [`run`] with another bound, for tools that wait on a cluster (`helm install --wait`).
pub fn run_within(what: &str, mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: spawn {cmd:?}: {e}"));
    wait_output_within(what, child, None, limit)
}

pub fn wait_output(what: &str, child: Child, stdin: Option<&str>) -> Output {
    wait_output_within(what, child, stdin, TOOL_TIMEOUT)
}

fn wait_output_within(
    what: &str,
    mut child: Child,
    stdin: Option<&str>,
    limit: Duration,
) -> Output {
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin piped");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let pid = child.id();
    // A watchdog kills the child by pid if it outlives the bound; wait_with_output then returns.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("wait for tool");
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    assert!(!killed, "{what}: still running after {limit:?}; killed");
    out
}
