//! `--secret-name` against a real kube-apiserver 1.20 (with etcd 3.4; see
//! `support::kube_cluster`): the forwarder's token user is bound by the chart's own Role
//! (rendered with `helm template`: get + watch on one Secret by name), reads the Secret through
//! a kubeconfig that verifies the server by our CA, and follows it under a steady load:
//! a key applied with `kubectl apply`, the Secret deleted and created again, its watch cut by
//! an API server restart after etcd compaction (the re-watch must not be from an expired
//! resource version), and RBAC refusing another user or another Secret. The Keystone and
//! Blueflood doubles stand for identity and storage; every run checks the ledger and what the
//! Blueflood double stored.
//!
//! Needs `BFF_KUBE_APISERVER`, `BFF_ETCD`, `BFF_ETCDCTL`, `BFF_KUBECTL`, `BFF_HELM` (from
//! `bash scripts/kube-apiserver.sh`); skips visibly without them, fails with CI=true.

mod chart;
mod rotation;
mod watch_expiry;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::reliability_child::{BIN, Child, spawn_command};
use crate::support::blueflood::BluefloodDouble;
use crate::support::keystone::KeystoneDouble;
use crate::support::kube_cluster::{KubeCluster, KubeTools, TokenUser, run};

pub const NS: &str = "bff-ns";
pub const SECRET: &str = "bff-keystone";
/// The ServiceAccount the chart's RoleBinding names (`serviceAccount.name=bff`): the
/// forwarder's token user is that ServiceAccount's user name.
pub const BFF_USER: &str = "system:serviceaccount:bff-ns:bff";
/// A ServiceAccount no Role is bound to.
pub const INTRUDER_USER: &str = "system:serviceaccount:bff-ns:intruder";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Kube {
    pub cluster: KubeCluster,
    pub bff: TokenUser,
    pub intruder: TokenUser,
}

fn sa_user(name: &str, token: &str) -> TokenUser {
    TokenUser {
        name: name.into(),
        token: token.into(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{NS}"),
            "system:authenticated".into(),
        ],
    }
}

/// A cluster with the namespace, the chart's Role and RoleBinding, and the Secret holding
/// alice/k1; `None` (after `prerequisite_missing`) without the programs.
pub fn setup(test: &str) -> Option<Kube> {
    let tools = KubeTools::from_env(test)?;
    let bff = sa_user(BFF_USER, "bff-token-for-tests-only");
    let intruder = sa_user(INTRUDER_USER, "intruder-token-for-tests-only");
    let cluster = KubeCluster::start(tools, &[bff.clone(), intruder.clone()]);
    cluster.kubectl(&["create", "namespace", NS]);
    let rbac = chart_rbac(&cluster);
    cluster.kubectl_stdin(&["apply", "-f", "-"], &rbac);
    let kube = Kube {
        cluster,
        bff,
        intruder,
    };
    kube.apply_secret("alice", "k1");
    Some(kube)
}

/// The chart's Role and RoleBinding, as `helm template` renders them for `auth.source:
/// kubernetes-api` with `rbac.create`.
fn chart_rbac(cluster: &KubeCluster) -> String {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/blueflood-forward");
    let mut cmd = Command::new(&cluster.tools.helm);
    cmd.args(["template", "bff"])
        .arg(&chart)
        .args(["--namespace", NS])
        .args(["--set", "auth.enabled=true,auth.source=kubernetes-api"])
        .args(["--set", &format!("auth.existingSecret={SECRET}")])
        .args(["--set", "rbac.create=true,serviceAccount.name=bff"])
        .args(["--show-only", "templates/rbac.yaml"]);
    let out = crate::support::kube_cluster::run_ok("helm template (rbac.yaml)", cmd);
    // What this test relies on the chart to say; the rest is the chart's business.
    assert!(
        out.contains("kind: Role\n")
            && out.contains("kind: RoleBinding\n")
            && out.contains(&format!("resourceNames: [\"{SECRET}\"]"))
            && out.contains("verbs: [\"get\", \"watch\"]"),
        "the chart's rbac.yaml is not get + watch on {SECRET}:\n{out}"
    );
    out
}

impl Kube {
    /// `kubectl apply` of the Secret with `username` and `apiKey`.
    pub fn apply_secret(&self, user: &str, key: &str) {
        let doc = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SECRET}\n  namespace: {NS}\ntype: Opaque\nstringData:\n  username: {user}\n  apiKey: {key}\n"
        );
        self.cluster.kubectl_stdin(&["apply", "-f", "-"], &doc);
    }

    /// The forwarder reading `secret` (in [`NS`]) as `user` through a kubeconfig, against the
    /// doubles.
    pub fn spawn_forwarder(
        &self,
        case: &str,
        user: &TokenUser,
        secret: &str,
        ks: &KeystoneDouble,
        bf: &BluefloodDouble,
    ) -> Child {
        let kubeconfig = self.cluster.kubeconfig_for(user);
        spawn_command(
            case,
            self.forwarder_command(&kubeconfig),
            &bf.url(),
            &[
                "--secret-name",
                secret,
                "--secret-namespace",
                NS,
                "--auth-url",
                &ks.url(),
            ],
        )
    }

    /// The forwarder binary with `KUBECONFIG` and nothing of an in-cluster environment.
    pub fn forwarder_command(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("KUBECONFIG", kubeconfig)
            .env("HOME", self.cluster.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT");
        cmd
    }

    /// `blueflood-forward check` reading `secret` as `user`: (exit code, stdout).
    pub fn check(
        &self,
        user: &TokenUser,
        secret: &str,
        ks: &KeystoneDouble,
        bf: &BluefloodDouble,
    ) -> (Option<i32>, String) {
        self.check_with(&self.cluster.kubeconfig_for(user), secret, ks, bf)
    }

    /// `blueflood-forward check` reading `secret` through `kubeconfig`: (exit code, output).
    pub fn check_with(
        &self,
        kubeconfig: &Path,
        secret: &str,
        ks: &KeystoneDouble,
        bf: &BluefloodDouble,
    ) -> (Option<i32>, String) {
        let mut cmd = self.forwarder_command(kubeconfig);
        cmd.args(["check", "-b", &bf.url(), "-t", "t1"])
            .args(["--secret-name", secret, "--secret-namespace", NS])
            .args(["--auth-url", &ks.url(), "--request-timeout", "5"]);
        let out = run("blueflood-forward check", cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Audit events of `user`'s requests on Secrets (verb, name, code, stage), oldest first.
    pub fn secret_requests(&self, user: &str) -> Vec<AuditEntry> {
        self.cluster
            .audit_events()
            .iter()
            .filter(|e| e["user"]["username"] == user)
            .map(|e| AuditEntry {
                verb: e["verb"].as_str().unwrap_or_default().into(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                name: e["objectRef"]["name"].as_str().unwrap_or_default().into(),
                code: e["responseStatus"]["code"].as_u64().unwrap_or(0),
                stage: e["stage"].as_str().unwrap_or_default().into(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub verb: String,
    pub resource: String,
    pub name: String,
    pub code: u64,
    pub stage: String,
}

/// Line-protocol batches of 20 points to `addr` every 20 ms until `stop`; returns the count.
pub fn steady_load(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let ts = crate::support::now_ms() / 1000;
            let text: String = (0..20)
                .map(|i| format!("kube.r{round}.m{i} {i} {ts}\n"))
                .collect();
            crate::support::send_tcp(addr, text.as_bytes()).await;
            sent += 20;
            round += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    })
}

/// Waits (bounded) until Keystone accepted a login with `key`.
pub async fn wait_login_with(ks: &KeystoneDouble, key: &str, within: Duration, c: &Child) {
    let end = Instant::now() + within;
    while !ks.logins().iter().any(|l| l.accepted && l.secret == key) {
        assert!(
            Instant::now() < end,
            "{}: no accepted login with key {key} within {within:?}; logins {:?}\nlog tail:\n{}",
            c.case,
            ks.logins()
                .iter()
                .map(|l| (l.secret.clone(), l.accepted))
                .collect::<Vec<_>>(),
            c.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the Blueflood double stored at least `n` points.
pub async fn wait_stored(bf: &BluefloodDouble, n: usize, c: &Child) {
    assert!(
        bf.wait_for_stored(n, WAIT).await,
        "{}: Blueflood stored {} of {n} within {WAIT:?}; log tail:\n{}",
        c.case,
        bf.stored_count(),
        c.log_tail(30)
    );
}

/// Stops the load, settles and stops the forwarder; asserts nothing was lost: every point
/// sent was received and delivered, none dropped, and Blueflood stored each.
pub async fn stop_and_account(
    c: Child,
    bf: &BluefloodDouble,
    stop: Arc<AtomicBool>,
    load: tokio::task::JoinHandle<u64>,
) -> serde_json::Value {
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("load task");
    let case = c.case.clone();
    let s = c.close_books(sent, WAIT).await;
    let l = &s["ledger"];
    assert_eq!(
        (
            l["received_total"].as_u64(),
            l["delivered"].as_u64(),
            l["dropped_total"].as_u64()
        ),
        (Some(sent), Some(sent), Some(0)),
        "{case}: the ledger: {s:#}"
    );
    assert_eq!(bf.stored_count() as u64, sent, "{case}: points stored");
    s
}

/// The RBAC denial: another user, or another Secret, is refused with a message naming the
/// Secret and the permission, in `check` and in the running forwarder's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusal_names_the_secret_and_the_permission() {
    let Some(kube) = setup("real_kube::rbac_refusal_names_the_secret_and_the_permission") else {
        return;
    };
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);

    // The bound user passes `check` (the baseline the refusals are measured against).
    let (code, out) = kube.check(&kube.bff, SECRET, &ks, &bf);
    assert_eq!(code, Some(0), "check as {BFF_USER}:\n{out}");
    assert!(
        out.contains(&format!("kubernetes secret {NS}/{SECRET}")),
        "{out}"
    );

    let cases = [
        (&kube.intruder, SECRET, INTRUDER_USER),
        (&kube.bff, "another-secret", BFF_USER),
    ];
    for (user, secret, user_name) in cases {
        let (code, out) = kube.check(user, secret, &ks, &bf);
        eprintln!("check as {user_name} reading {secret}:\n{out}");
        let forbidden = format!(
            "secrets \"{secret}\" is forbidden: User \"{user_name}\" cannot get resource \"secrets\""
        );
        assert_eq!(code, Some(1), "check as {user_name} on {secret}:\n{out}");
        assert!(
            out.contains("FAILED  credentials:")
                && out.contains(&format!("cannot get secret {NS}/{secret}"))
                && out.contains(&forbidden)
                && out.contains("(HTTP 403)"),
            "check as {user_name} on {secret} does not say what is refused:\n{out}"
        );
        assert!(
            !out.contains("token-for-tests-only"),
            "a token in the output:\n{out}"
        );
    }

    // The server is verified by the kubeconfig's CA: another CA's kubeconfig gets nothing.
    let other_ca = kube.cluster.other_ca();
    let wrong = kube.cluster.dir.path().join("wrong-ca.kubeconfig");
    kube.cluster
        .write_kubeconfig_with_ca(&wrong, &kube.bff.token, &other_ca);
    let requests_before = kube.secret_requests(BFF_USER).len();
    let (code, out) = kube.check_with(&wrong, SECRET, &ks, &bf);
    eprintln!("check with another CA in the kubeconfig:\n{out}");
    assert_eq!(code, Some(1), "check trusting another CA:\n{out}");
    assert!(
        out.contains("FAILED  credentials:")
            && out.contains("cannot get secret")
            && out.contains("invalid peer certificate"),
        "check trusting another CA does not say the certificate was refused:\n{out}"
    );
    assert_eq!(
        kube.secret_requests(BFF_USER).len(),
        requests_before,
        "a request (and its token) reached a server the kubeconfig does not trust"
    );

    // The running forwarder says the same in /status and its log, and keeps asking.
    let case = "real_kube rbac: a running forwarder as the intruder";
    let c = kube.spawn_forwarder(case, &kube.intruder, SECRET, &ks, &bf);
    let s = c
        .wait_status(WAIT, "a forbidden Secret in last_error", |s| {
            s["auth"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("forbidden") && e.contains(SECRET))
        })
        .await;
    assert_eq!(s["auth"]["credentials_loaded"], false, "{s:#}");
    assert!(
        c.log_lines()
            .iter()
            .any(|l| l.contains("cannot read credentials") && l.contains("is forbidden")),
        "no log line about the refusal:\n{}",
        c.log_tail(30)
    );
    assert!(
        !c.log_lines()
            .iter()
            .any(|l| l.contains("token-for-tests-only")),
        "a token in the log"
    );
    c.stop(WAIT).await;
    // What the API server saw: only refused gets of that one Secret by the intruder.
    let seen = kube.secret_requests(INTRUDER_USER);
    assert!(
        !seen.is_empty(),
        "the API server saw no request from {INTRUDER_USER}"
    );
    assert!(
        seen.iter().all(|e| e.verb == "get" && e.code == 403),
        "{seen:?}"
    );
}
