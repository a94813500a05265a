//! The container image as Kubernetes runs it: `podman run` of the image built by
//! `scripts/check-image.sh` (named by `BFF_IMAGE`) with a read-only root filesystem (and no
//! tmpfs of podman's own), every capability dropped, no-new-privileges, UID 65532, the spool
//! on a volume as the chart mounts it, and the host's loopback network. It must become ready,
//! deliver line and pickle datapoints to the Blueflood double on the host, and exit 0 on
//! SIGTERM with nothing dropped. The running process is read from /proc: its user, its
//! capabilities and its root mount are what the flags promise.
//!
//! Without `BFF_IMAGE` the test says `SKIPPED` and passes, unless `CI=true`, when it fails.

use crate::reliability_child;
use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use reliability_child::{http_get, spawn_command};
use support::blueflood::BluefloodDouble;
use support::{line_payload, now_secs_f64, pickle_frame, send_tcp};

const WAIT: Duration = Duration::from_secs(60);
const SPOOL: &str = "/var/spool/blueflood-forward";

/// The image to test, or `None` when there is none (a failure under `CI=true`).
fn image() -> Option<String> {
    match std::env::var("BFF_IMAGE") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => {
            support::prerequisite_missing(
                "image_e2e",
                "BFF_IMAGE is not set: build the image with `bash scripts/check-image.sh`",
            );
            None
        }
    }
}

/// Removes the container whatever happens to the test (killing the `podman run` client alone
/// would leave it running).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

/// `field` of /proc/PID/status (e.g. `Uid`), whitespace-separated values.
fn proc_status(pid: u32, field: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn as_refs(v: &[(String, f64, f64)]) -> Vec<(&str, f64, f64)> {
    v.iter().map(|(n, t, x)| (n.as_str(), *t, *x)).collect()
}

/// The host pid of the container's first process.
fn container_pid(name: &str) -> u32 {
    let out = Command::new("podman")
        .args(["inspect", "--format", "{{.State.Pid}}", name])
        .output()
        .expect("podman inspect");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("podman inspect {name}: {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_runs_read_only_as_nonroot_and_delivers_line_and_pickle() {
    let Some(image) = image() else { return };
    let bf = BluefloodDouble::start().await;
    let name = format!("bff-image-e2e-{}", std::process::id());
    let _cleanup = Container(name.clone());
    let mut podman = Command::new("podman");
    podman.args([
        "run",
        "--rm",
        "--name",
        &name,
        "--network=host",
        "--read-only",
        // Kubernetes' readOnlyRootFilesystem gives no writable /tmp, /run or /var/tmp.
        "--read-only-tmpfs=false",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--user=65532:65532",
        // The chart's spool volume (an emptyDir), here a tmpfs.
        &format!("--mount=type=tmpfs,destination={SPOOL},tmpfs-size=64m,tmpfs-mode=1777"),
        &image,
    ]);
    let mut child = spawn_command("image", podman, &bf.url(), &["--spool-dir", SPOOL]);

    let end = Instant::now() + WAIT;
    while let Err(e) = http_get(child.admin, "/readyz").await {
        assert!(
            Instant::now() < end,
            "/readyz not 200 after {WAIT:?}: {e}; log:\n{}",
            child.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pid = container_pid(&name);
    assert_eq!(
        proc_status(pid, "Uid"),
        ["65532"; 4],
        "container process user"
    );
    assert_eq!(
        proc_status(pid, "Gid"),
        ["65532"; 4],
        "container process group"
    );
    assert_eq!(
        proc_status(pid, "CapEff"),
        ["0000000000000000"],
        "capabilities"
    );
    assert_eq!(
        proc_status(pid, "CapBnd"),
        ["0000000000000000"],
        "capability bound"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs"), ["1"], "no_new_privs");
    let mounts =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("/proc/PID/mountinfo");
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("a root mount");
    let options = root.split_whitespace().nth(5).unwrap_or_default();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "root filesystem not read-only: {root}"
    );

    let ts = now_secs_f64().floor();
    let lines: Vec<(String, f64, f64)> = (0..50)
        .map(|i| (format!("image.line.m{i}"), ts, i as f64))
        .collect();
    let pickles: Vec<(String, f64, f64)> = (0..50)
        .map(|i| (format!("image.pickle.m{i}"), ts, i as f64 + 0.5))
        .collect();
    send_tcp(child.line, &line_payload(&as_refs(&lines))).await;
    send_tcp(child.pickle, &pickle_frame(&as_refs(&pickles))).await;
    assert!(
        bf.wait_for_stored(100, WAIT).await,
        "stored {} of 100; log:\n{}",
        bf.stored_count(),
        child.log_tail(30)
    );
    let stored = bf.stored();
    for (name, ts, value) in lines.iter().chain(&pickles) {
        let want = format!("pre.{name}");
        let p = stored
            .iter()
            .find(|p| p.metric_name == want)
            .unwrap_or_else(|| panic!("{want} not stored"));
        assert_eq!(p.metric_value, *value, "{want}");
        assert_eq!(p.collection_time, (*ts as i64) * 1000, "{want}");
    }

    child.sigterm();
    let (code, stopped) = child.wait_exit(WAIT).await;
    assert_eq!(
        code,
        Some(0),
        "exit code after SIGTERM; log:\n{}",
        child.log_tail(30)
    );
    let stopped = stopped.expect("a final \"stopped\" log line");
    assert_eq!(stopped["received"], 100, "{stopped}");
    assert_eq!(stopped["delivered"], 100, "{stopped}");
    assert_eq!(stopped["dropped"], 0, "{stopped}");
}
