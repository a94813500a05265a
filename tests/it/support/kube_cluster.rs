//! A real Kubernetes API server for tests: Debian's etcd 3.4 and kube-apiserver 1.20 (built by
//! `scripts/kube-apiserver.sh`) on 127.0.0.1, each a child process killed by pid on drop, with
//! certificates made by `openssl` in a temporary directory (a CA of our own and a serving
//! certificate for 127.0.0.1, so clients verify the server), static bearer tokens
//! (`--token-auth-file`: an admin in `system:masters` and ServiceAccount-style users),
//! `--authorization-mode=RBAC`, an audit log of every request, and kubeconfigs for each token.
//!
//! The programs are named by `BFF_KUBE_APISERVER`, `BFF_ETCD`, `BFF_ETCDCTL`, `BFF_KUBECTL` and
//! `BFF_HELM` (what `scripts/kube-apiserver.sh` prints); [`KubeTools::from_env`] reports a
//! missing one through `prerequisite_missing` (a failure with CI=true).

mod certs;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certs::make_certificates;
pub use process::{Proc, free_port, run, run_ok, run_within};
use process::{wait_output, which};

/// How long etcd or the API server may take to become ready (the API server needs ~3 s).
const READY_WITHIN: Duration = Duration::from_secs(60);

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-only";

/// The programs a real cluster needs.
#[derive(Clone, Debug)]
pub struct KubeTools {
    pub apiserver: PathBuf,
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

impl KubeTools {
    /// The tools from the environment, or `None` after reporting which is missing. Reported
    /// under the name `real_kube` (what `BFF_SKIP` names to leave these tests to `.ci/run`).
    pub fn from_env(test: &str) -> Option<KubeTools> {
        let mut missing = Vec::new();
        let mut get = |var: &str| -> PathBuf {
            let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_default();
            if !p.is_file() {
                missing.push(format!("{var}={}", p.display()));
            }
            p
        };
        let tools = KubeTools {
            apiserver: get("BFF_KUBE_APISERVER"),
            etcd: get("BFF_ETCD"),
            etcdctl: get("BFF_ETCDCTL"),
            kubectl: get("BFF_KUBECTL"),
            helm: get("BFF_HELM"),
        };
        if missing.is_empty() && which("openssl").is_none() {
            missing.push("openssl on PATH".into());
        }
        if missing.is_empty() {
            return Some(tools);
        }
        crate::support::prerequisite_missing(
            "real_kube",
            &format!(
                "{test}: a real kube-apiserver needs {} (run `bash scripts/kube-apiserver.sh` and export what it prints)",
                missing.join(", ")
            ),
        );
        None
    }
}
/// A token user the API server knows: `name` (e.g. `system:serviceaccount:ns:bff`), its token.
#[derive(Clone, Debug)]
pub struct TokenUser {
    pub name: String,
    pub token: String,
    pub groups: Vec<String>,
}

/// etcd and a kube-apiserver over it, with the files both need.
pub struct KubeCluster {
    pub tools: KubeTools,
    pub dir: tempfile::TempDir,
    pub etcd_url: String,
    pub apiserver_url: String,
    secure_port: u16,
    etcd: Proc,
    apiserver: Option<Proc>,
    pub admin_kubeconfig: PathBuf,
}

impl KubeCluster {
    /// Starts etcd and the API server knowing `users` (plus the admin), and waits until the
    /// API server is ready (bounded).
    pub fn start(tools: KubeTools, users: &[TokenUser]) -> KubeCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        make_certificates(dir.path());
        let mut csv = format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n");
        for u in users {
            csv.push_str(&format!(
                "{},{},{}-uid,\"{}\"\n",
                u.token,
                u.name,
                u.name.replace(':', "-"),
                u.groups.join(",")
            ));
        }
        std::fs::write(dir.path().join("tokens.csv"), csv).expect("write tokens.csv");
        // Every request, its user, verb and answer code: what the tests read back.
        std::fs::write(
            dir.path().join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
        )
        .expect("write audit policy");

        let (client_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(&tools.etcd);
        cmd.args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &etcd_url])
            .args(["--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--log-level", "warn", "--logger", "zap"]);
        let etcd = Proc::spawn("etcd", cmd, dir.path().join("etcd.log"));
        let secure_port = free_port();
        let admin_kubeconfig = dir.path().join("admin.kubeconfig");
        let mut cluster = KubeCluster {
            tools,
            apiserver_url: format!("https://127.0.0.1:{secure_port}"),
            etcd_url,
            secure_port,
            etcd,
            apiserver: None,
            admin_kubeconfig,
            dir,
        };
        cluster.wait_etcd();
        cluster.write_kubeconfig(&cluster.admin_kubeconfig.clone(), ADMIN_TOKEN);
        cluster.start_apiserver();
        cluster
    }

    fn wait_etcd(&mut self) {
        let end = Instant::now() + READY_WITHIN;
        loop {
            let out = run(
                "etcdctl endpoint health",
                self.etcdctl(&["endpoint", "health"]),
            );
            if out.status.success() {
                return;
            }
            if let Some(s) = self.etcd.exited() {
                panic!("etcd exited ({s}); log:\n{}", self.etcd.log_tail(30));
            }
            assert!(
                Instant::now() < end,
                "etcd not healthy after {READY_WITHIN:?}: {}; log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.etcd.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts (or starts again, on the same port and etcd) the API server and waits for
    /// `/readyz`.
    pub fn start_apiserver(&mut self) {
        let d = self.dir.path();
        let file = |name: &str| d.join(name).display().to_string();
        let mut cmd = Command::new(&self.tools.apiserver);
        cmd.arg(format!("--etcd-servers={}", self.etcd_url))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.secure_port))
            // 1.20 still opens an unauthenticated port 8080 unless told not to.
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", file("cert-dir")))
            .arg(format!("--tls-cert-file={}", file("server.crt")))
            .arg(format!("--tls-private-key-file={}", file("server.key")))
            .arg(format!("--client-ca-file={}", file("ca.crt")))
            .arg(format!("--token-auth-file={}", file("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--anonymous-auth=false")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", file("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                file("sa.key")
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false")
            .arg(format!("--audit-policy-file={}", file("audit-policy.yaml")))
            .arg(format!("--audit-log-path={}", file("audit.log")))
            .arg("--v=1");
        let mut proc = Proc::spawn("kube-apiserver", cmd, d.join("apiserver.log"));
        let end = Instant::now() + READY_WITHIN;
        loop {
            let out = run(
                "kubectl get --raw /readyz",
                self.kubectl_as(&self.admin_kubeconfig, &["get", "--raw", "/readyz"]),
            );
            if out.status.success() {
                break;
            }
            if let Some(s) = proc.exited() {
                panic!("kube-apiserver exited ({s}); log:\n{}", proc.log_tail(40));
            }
            assert!(
                Instant::now() < end,
                "kube-apiserver not ready after {READY_WITHIN:?}: {}; log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                proc.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        self.apiserver = Some(proc);
    }

    /// Kills the API server (etcd keeps running): every watch it served ends.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut p) = self.apiserver.take() {
            p.kill();
        }
    }

    /// A kubeconfig for `token` at `path`: the server's address, our CA (verified, never
    /// skipped) and the bearer token.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        self.write_kubeconfig_with_ca(path, token, &self.dir.path().join("ca.crt"));
    }

    /// A kubeconfig for `token` that trusts `ca` (a wrong one, to see the server refused).
    pub fn write_kubeconfig_with_ca(&self, path: &Path, token: &str, ca: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: u\ncurrent-context: test\n",
            self.apiserver_url,
            ca.display()
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// A kubeconfig file in the cluster's directory for `user`.
    pub fn kubeconfig_for(&self, user: &TokenUser) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", user.name.replace(':', "-")));
        self.write_kubeconfig(&path, &user.token);
        path
    }

    fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tools.kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            .env("HOME", self.dir.path());
        cmd
    }

    /// kubectl as the admin; panics unless it succeeds. Returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        run_ok(
            &format!("kubectl {}", args.join(" ")),
            self.kubectl_as(&self.admin_kubeconfig, args),
        )
    }

    /// kubectl as the admin with `stdin` (for `apply -f -`); panics unless it succeeds.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let what = format!("kubectl {}", args.join(" "));
        let child = self
            .kubectl_as(&self.admin_kubeconfig, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = wait_output(&what, child, Some(stdin));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}\nstdin:\n{stdin}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// etcdctl (v3 API) against our etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tools.etcdctl);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.etcd_url))
            .arg("--command-timeout=20s")
            .args(args);
        cmd
    }

    /// etcd's current revision (every write anywhere in the cluster raises it).
    pub fn etcd_revision(&self) -> u64 {
        let out = run_ok(
            "etcdctl endpoint status",
            self.etcdctl(&["endpoint", "status", "-w", "json"]),
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl JSON");
        v[0]["Status"]["header"]["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("no revision in {out}"))
    }

    /// Compacts etcd's history up to its current revision: older resource versions are gone.
    pub fn compact(&self) -> u64 {
        let rev = self.etcd_revision();
        run_ok(
            "etcdctl compaction",
            self.etcdctl(&["compaction", "--physical", &rev.to_string()]),
        );
        rev
    }

    /// The audit log's events (one JSON object a line), oldest first.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
