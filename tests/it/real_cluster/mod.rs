//! The user's own words on a real single-node Kubernetes 1.20.2 (`scripts/check-cluster.sh`:
//! etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd and the kubelet on
//! 127.0.0.1): `helm install` of the chart in sidecar mode beside a real carbon-relay (Debian's
//! graphite-carbon) with the image built from the real Dockerfile; the kubelet reading the
//! probes; Keystone keys rotated by updating the Secret; a pod deleted under load. The Blueflood
//! and Keystone doubles run in this process on 127.0.0.1; the pods use the host network, so they
//! reach them there (kubelet 1.20 refuses a node IP of 127.0.0.1, and there is no pod network).
//!
//! Needs the env lines `scripts/check-cluster.sh --up --env F` writes (`BFF_CLUSTER_*`,
//! `BFF_KUBECTL`, `BFF_HELM`); skips visibly without them, fails with CI=true. Each case has its
//! own namespace and host ports; at most [`AT_ONCE`] run at a time ([`slot`]) on the one node.

mod drain;
mod install;
mod pods;
mod rotation;

pub use pods::{container, name, pod_ready, restarts};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child as ProcChild, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::reliability_child::{http_get, line_load};
use crate::support::blueflood::BluefloodDouble;
use crate::support::kube_cluster::{run, run_ok, run_within};

/// How long `helm install --wait` and a pod's replacement may take (images are local).
pub const POD_WAIT: Duration = Duration::from_secs(180);

/// Cases running at once: most of a case is waiting (an outage, a grace period, the kubelet's
/// sync), so a few together cut the wall time; more would crowd two cores.
pub const AT_ONCE: usize = 3;
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// A place among the [`AT_ONCE`] cases (an async semaphore, held across the case's awaits; a
/// failed case gives its place back).
pub async fn slot() -> tokio::sync::SemaphorePermit<'static> {
    SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}

/// The cluster `scripts/check-cluster.sh --up` started.
#[derive(Clone)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub api_port: u16,
    pub forwarder_image: String,
    pub relay_image: String,
}

impl Cluster {
    pub fn from_env(test: &str) -> Option<Cluster> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (
            var("BFF_CLUSTER_KUBECONFIG"),
            var("BFF_KUBECTL"),
            var("BFF_HELM"),
            var("BFF_CLUSTER_API_PORT"),
            var("BFF_CLUSTER_FORWARDER_IMAGE"),
            var("BFF_CLUSTER_RELAY_IMAGE"),
        ) {
            (Some(kc), Some(kubectl), Some(helm), Some(port), Some(fwd), Some(relay)) => {
                Some(Cluster {
                    kubeconfig: kc.into(),
                    kubectl: kubectl.into(),
                    helm: helm.into(),
                    api_port: port.parse().expect("BFF_CLUSTER_API_PORT"),
                    forwarder_image: fwd,
                    relay_image: relay,
                })
            }
            _ => {
                crate::support::prerequisite_missing(
                    test,
                    "no cluster: run `bash scripts/check-cluster.sh` (or --up --env F, then \
                     source F)",
                );
                None
            }
        }
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args);
        cmd
    }

    /// `kubectl ARGS`; panics with its output when it fails. Returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        run_ok(
            &format!("kubectl {}", args.join(" ")),
            self.kubectl_cmd(args),
        )
    }

    /// `kubectl ARGS` that waits on the cluster (a pod's deletion: its grace period, then the
    /// kubelet's teardown), bounded by [`POD_WAIT`]; panics with its output when it fails.
    pub fn kubectl_waiting(&self, args: &[&str]) -> String {
        let what = format!("kubectl {}", args.join(" "));
        let out = run_within(&what, self.kubectl_cmd(args), POD_WAIT);
        assert!(out.status.success(), "{what} failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl ARGS`, any exit code: (success, stdout + stderr).
    pub fn try_kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = run(
            &format!("kubectl {}", args.join(" ")),
            self.kubectl_cmd(args),
        );
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Deletes namespace `ns` if an earlier run left it, and creates it.
    pub fn fresh_namespace(&self, ns: &str) {
        let out = run_within(
            "kubectl delete namespace",
            self.kubectl_cmd(&[
                "delete",
                "namespace",
                ns,
                "--ignore-not-found",
                "--wait=true",
            ]),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "kubectl delete namespace {ns}: {out:?}"
        );
        self.kubectl(&["create", "namespace", ns]);
    }

    /// A shell pipeline with `kubectl` meaning this cluster's (the README's commands as typed).
    pub fn shell(&self, script: &str) -> String {
        let dir = self.kubectl.parent().expect("kubectl's directory");
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", script])
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        run_ok(&format!("bash -c {script:?}"), cmd)
    }
}

/// Host ports of one release (the pod is on the host network).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub relay_line: u16,
    pub relay_pickle: u16,
    pub pickle: u16,
    pub admin: u16,
}

/// Ports handed to a case in this process: concurrent cases never share one (a port the kernel
/// gave back may be handed out again at once).
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

impl Ports {
    /// Four distinct ports, free a moment ago and not given to another case.
    fn free() -> Ports {
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        let mut held = Vec::new();
        while held.len() < 4 {
            // Held open together, the four are distinct.
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let port = l.local_addr().expect("local addr").port();
            if !handed.contains(&port) {
                handed.push(port);
                held.push((port, l));
            }
        }
        Ports {
            relay_line: held[0].0,
            relay_pickle: held[1].0,
            pickle: held[2].0,
            admin: held[3].0,
        }
    }

    pub fn relay_line_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.relay_line))
    }
}

/// One `helm install` in its own namespace; uninstalled and the namespace deleted on drop.
pub struct Release {
    pub cluster: Cluster,
    pub ns: String,
    pub name: String,
    pub ports: Ports,
    _values: tempfile::TempDir,
}

/// The chart's values for this cluster: sidecar mode, the local images (never pulled), the host
/// network with every listener on 127.0.0.1, and the given Blueflood URL; `extra` is merged on
/// top (objects merge, anything else replaces).
pub fn values(cluster: &Cluster, ports: Ports, blueflood: &str, extra: Value) -> Value {
    let (fwd_repo, fwd_tag) = split_image(&cluster.forwarder_image);
    let (relay_repo, relay_tag) = split_image(&cluster.relay_image);
    let mut v = json!({
        "mode": "sidecar",
        "hostNetwork": true,
        "listenAddress": "127.0.0.1",
        "image": {"registry": "", "repository": fwd_repo, "tag": fwd_tag, "pullPolicy": "Never"},
        "relay": {
            "image": {"registry": "", "repository": relay_repo, "tag": relay_tag,
                      "pullPolicy": "Never"},
            "command": ["/usr/bin/carbon-relay", "--nodaemon",
                        "--config=/etc/carbon/carbon.conf", "start"],
            "linePort": ports.relay_line,
            "picklePort": ports.relay_pickle,
        },
        "forwarder": {
            "blueflood": blueflood,
            "tenant": "t1",
            "interval": 1,
            "adminPort": ports.admin,
            "pickle": {"port": ports.pickle},
        },
    });
    merge(&mut v, extra);
    v
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// `localhost/name:tag` → (`localhost/name`, `tag`); the chart's registry is left empty.
fn split_image(image: &str) -> (String, String) {
    let (repo, tag) = image.rsplit_once(':').expect("image with a tag");
    (repo.to_string(), tag.to_string())
}

impl Release {
    /// `helm install --wait` into `ns` (made by [`Cluster::fresh_namespace`]) with `values`.
    pub fn install(cluster: &Cluster, ns: &str, ports: Ports, values: &Value) -> Release {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("values.yaml");
        // JSON is YAML.
        std::fs::write(&file, serde_json::to_vec_pretty(values).expect("values")).expect("write");
        let release = Release {
            cluster: cluster.clone(),
            ns: ns.into(),
            name: "bff".into(),
            ports,
            _values: dir,
        };
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/blueflood-forward");
        let mut cmd = Command::new(&cluster.helm);
        cmd.arg("install")
            .arg(&release.name)
            .arg(&chart)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["--namespace", ns, "--wait", "--timeout", "150s"])
            .arg("-f")
            .arg(&file);
        let out = run_within("helm install --wait", cmd, POD_WAIT);
        assert!(
            out.status.success(),
            "helm install failed:\n{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            release.describe()
        );
        release
    }

    /// What the pods, their events and their containers' logs say (for failure messages).
    pub fn describe(&self) -> String {
        let (_, pods) = self
            .cluster
            .try_kubectl(&["-n", &self.ns, "describe", "pods"]);
        let mut logs = String::new();
        for c in ["carbon-relay", "blueflood-forward"] {
            let (_, l) = self.cluster.try_kubectl(&[
                "-n",
                &self.ns,
                "logs",
                "--tail=40",
                "-l",
                "app.kubernetes.io/instance=bff",
                "-c",
                c,
            ]);
            logs.push_str(&format!("--- {c} logs ---\n{l}\n"));
        }
        format!("--- pods ---\n{pods}\n{logs}")
    }

    /// The release's pods (`kubectl get pods -o json` items), oldest first.
    pub fn pods(&self) -> Vec<Value> {
        let out = self.cluster.kubectl(&[
            "-n",
            &self.ns,
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=bff",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&out).expect("pods json");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// The one running pod (panics when there is not exactly one).
    pub fn pod(&self) -> Value {
        let pods = self.pods();
        assert_eq!(pods.len(), 1, "one pod expected:\n{}", self.describe());
        pods[0].clone()
    }

    /// Waits (bounded) until `ready(pods)`; panics with the pods' story otherwise.
    pub fn wait_pods(&self, what: &str, limit: Duration, ready: impl Fn(&[Value]) -> bool) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if ready(&self.pods()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{what}: not within {limit:?}\n{}", self.describe());
    }

    /// The forwarder's /status (its admin port is on the host's 127.0.0.1).
    pub async fn status(&self) -> Option<Value> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.admin));
        let body = http_get(addr, "/status").await.ok()?;
        serde_json::from_str(&body).ok()
    }

    /// Follows the forwarder container of `pod` (`kubectl logs -f`) into a file, so what it
    /// said survives the pod's deletion.
    pub fn follow_logs(&self, pod: &str) -> LogFollower {
        let file = tempfile::NamedTempFile::new().expect("log file");
        let out = file.reopen().expect("reopen");
        let child = self
            .cluster
            .kubectl_cmd(&["-n", &self.ns, "logs", "-f", pod, "-c", "blueflood-forward"])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl logs -f");
        LogFollower { child, file }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut cmd = Command::new(&self.cluster.helm);
        cmd.args([
            "uninstall",
            &self.name,
            "--namespace",
            &self.ns,
            "--kubeconfig",
        ])
        .arg(&self.cluster.kubeconfig);
        let _ = run("helm uninstall", cmd);
        // Pods must be gone before the next case takes the host's ports.
        let _ = run_within(
            "kubectl delete namespace",
            self.cluster
                .kubectl_cmd(&["delete", "namespace", &self.ns, "--wait=true"]),
            Duration::from_secs(120),
        );
    }
}

/// `kubectl logs -f` of one container, written to a file.
pub struct LogFollower {
    child: ProcChild,
    file: tempfile::NamedTempFile,
}

impl LogFollower {
    /// The JSON log lines so far.
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.file.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends 100 lines named `{stem}.b0.m{i}` to carbon-relay's line port and waits (bounded) until
/// the double has stored them all (it held nothing before); returns 100.
pub async fn hundred_through_the_relay(rel: &Release, bf: &BluefloodDouble, stem: &str) -> u64 {
    let sent = line_load(rel.ports.relay_line_addr(), stem, 1, 100, Duration::ZERO).await;
    assert!(
        bf.wait_for_stored(sent as usize, Duration::from_secs(60))
            .await,
        "{} of {sent} stored\n{}",
        bf.stored_count(),
        rel.describe()
    );
    sent
}

/// Runs blocking work (kubectl, helm) off the runtime's workers, so the doubles keep answering.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

pub fn ports() -> Ports {
    Ports::free()
}

/// Lines into carbon-relay until stopped: batches of `per_batch` every `gap`, each its own
/// connection; names `{stem}.r{round}.b0.m{i}`. `stop()` returns how many were sent.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Load {
    pub fn start(addr: SocketAddr, stem: &str, per_batch: usize, gap: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let stem = stem.to_string();
        let task = tokio::spawn(async move {
            let mut sent = 0;
            let mut round = 0;
            while !flag.load(Ordering::SeqCst) {
                sent += line_load(addr, &format!("{stem}.r{round}"), 1, per_batch, gap).await;
                round += 1;
            }
            sent
        });
        Load { stop, task }
    }

    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("load task")
    }
}
