//! End to end against a real OpenStack Keystone (PyPI `keystone` 30, sqlite, fernet tokens of
//! 60 s, served by gunicorn; see `support::real_keystone`), through the binary with
//! `--auth-method v3-password` and a project scope, the credentials in kubelet-style Secret
//! files, and a Blueflood double that validates every token with that Keystone (as Repose does),
//! so an expired or revoked token really is refused.
//!
//! Cases sharing one Keystone (separate users) run concurrently in
//! `shared_keystone_rotation_same_second_revocation_and_a_wrong_password`: the password rotated
//! under steady load across a token refresh (`rotation.rs`), the revocation of tokens issued in
//! the same second as a password change (`revocation.rs`), a wrong password for `check` and for
//! a running forwarder (`wrong_password.rs`). `keystone_stopped_for_30_s_while_a_token_expires`
//! (`outage.rs`) stops its own Keystone. Every case checks the ledger (received = delivered,
//! nothing dropped) and what the double stored, and reports its login count.
//!
//! Needs the virtualenv of `scripts/real-keystone.sh` (`.cache/keystone-venv` or
//! `BFF_KEYSTONE_VENV`); without it the tests skip visibly, with `CI=true` they fail.

mod outage;
mod revocation;
mod rotation;
mod wrong_password;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::reliability_child::{Child, line_load, metric, n, spawn};
use crate::support::blueflood::BluefloodDouble;
use crate::support::real_keystone::{self, RealKeystone, ServiceUser, TOKEN_LIFETIME_S};
use crate::support::secrets::kubelet_write;
use crate::support::{self};

/// The bound of every settle: the longest a case waits for its last point to be delivered.
const SETTLE: Duration = Duration::from_secs(90);

/// The virtualenv, or `None` after reporting it missing (a failure under `CI=true`).
fn venv_or_skip(test: &str) -> Option<PathBuf> {
    match real_keystone::venv() {
        Ok(v) => Some(v),
        Err(why) => {
            support::prerequisite_missing(test, &why);
            None
        }
    }
}

/// A fresh Keystone, set up off the runtime's workers (it takes seconds).
fn start_keystone(venv: &Path, token_lifetime_s: u64) -> RealKeystone {
    tokio::task::block_in_place(|| RealKeystone::start(venv, token_lifetime_s))
}

/// One case: its service user, its Secret volume, its Blueflood double (validating with the
/// real Keystone, requiring the user's project) and the forwarder reading the volume.
struct Case {
    name: &'static str,
    user: ServiceUser,
    secrets: tempfile::TempDir,
    bf: BluefloodDouble,
    fwd: Child,
    /// Secret volume updates so far (each needs a new `..<stamp>` directory).
    stamps: u32,
}

/// The forwarder's arguments for a v3 login as `user` from the Secret volume at `dir`.
fn auth_args(ks: &RealKeystone, dir: &Path, project_id: &str) -> Vec<String> {
    vec![
        "--auth-method".into(),
        "v3-password".into(),
        "--auth-url".into(),
        ks.token_url(),
        "--user-file".into(),
        dir.join("username").display().to_string(),
        "--key-file".into(),
        dir.join("apiKey").display().to_string(),
        "--auth-project-id".into(),
        project_id.into(),
        // Keystone under a loaded CI machine can take seconds to answer (the test default
        // is 2 s): a timed-out login would be counted as a failure it is not.
        "--request-timeout".into(),
        "10".into(),
    ]
}

impl Case {
    /// Creates the user (`password`, member of a project of its own), writes the Secret volume
    /// with `secret_password` (the right one or not) and starts the forwarder on it.
    async fn start(
        ks: &RealKeystone,
        name: &'static str,
        password: &str,
        secret_password: &str,
    ) -> Case {
        let user = ks.admin().service_user(name, password).await;
        let secrets = tempfile::tempdir().expect("secret volume");
        kubelet_write(secrets.path(), "0", &user.name, secret_password);
        let bf = BluefloodDouble::start().await;
        bf.require_real_keystone(ks.admin(), &user.project_id);
        let args = auth_args(ks, secrets.path(), &user.project_id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let fwd = tokio::task::block_in_place(|| spawn(name, &bf.url(), &args));
        Case {
            name,
            user,
            secrets,
            bf,
            fwd,
            stamps: 0,
        }
    }

    /// The kubelet's update of the Secret volume to `password`.
    fn rotate_secret(&mut self, password: &str) {
        self.stamps += 1;
        kubelet_write(
            self.secrets.path(),
            &self.stamps.to_string(),
            &self.user.name,
            password,
        );
    }

    /// Steady load in the background: `batches` connections of 20 points, `gap` apart.
    fn load(&self, batches: usize, gap: Duration) -> tokio::task::JoinHandle<u64> {
        tokio::spawn(line_load(self.fwd.line, self.name, batches, 20, gap))
    }

    /// Settles, stops the forwarder, and checks that nothing was lost (and that `/metrics`
    /// counts the same logins as `/status`): every point sent was
    /// received and delivered, none dropped, and the double stored each of them. Returns the
    /// final status and the double.
    async fn close_books(self, sent: u64) -> (serde_json::Value, BluefloodDouble) {
        let Case { name, bf, fwd, .. } = self;
        let s = fwd.settle(sent, SETTLE).await;
        // The logins as Prometheus would read them are the ones `/status` reports.
        let m = fwd.metrics().await;
        assert_eq!(
            (
                metric(&m, "auth_requests_total"),
                metric(&m, "auth_failures_total")
            ),
            logins(&s),
            "{name}: logins in /metrics and /status"
        );
        fwd.stop(Duration::from_secs(30)).await;
        let l = &s["ledger"];
        assert_eq!(
            (
                n(&l["received_total"]),
                n(&l["delivered"]),
                n(&l["dropped_total"])
            ),
            (sent, sent, 0),
            "{name}: received, delivered, dropped; {s:#}"
        );
        // What the double stored from this load (not `check`'s own datapoint).
        let stem = format!("pre.{name}.");
        let stored = || {
            bf.stored()
                .iter()
                .filter(|p| p.metric_name.starts_with(&stem))
                .count() as u64
        };
        assert_eq!(stored(), sent, "{name}: datapoints Blueflood stored");
        (s, bf)
    }
}

/// Logins and failed logins from a status document.
fn logins(s: &serde_json::Value) -> (u64, u64) {
    (
        n(&s["auth"]["auth_requests"]),
        n(&s["auth"]["auth_failures"]),
    )
}

/// The distinct tokens the double was sent, in order of first use, with whether any request
/// carrying each was refused (401).
fn tokens_seen(bf: &BluefloodDouble) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for r in bf.requests() {
        let Some(t) = r.auth_token else { continue };
        match out.iter_mut().find(|(seen, _)| *seen == t) {
            Some((_, refused)) => *refused |= r.status == 401,
            None => out.push((t, r.status == 401)),
        }
    }
    out
}

/// A line for the test output (shown with `--nocapture`), and in the report.
fn report(case: &str, what: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("real_keystone {case}: {what}\n").as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_keystone_rotation_same_second_revocation_and_a_wrong_password() {
    let test =
        "real_keystone::shared_keystone_rotation_same_second_revocation_and_a_wrong_password";
    let Some(venv) = venv_or_skip(test) else {
        return;
    };
    let ks = start_keystone(&venv, TOKEN_LIFETIME_S);
    tokio::join!(
        rotation::password_rotated_under_load_across_a_refresh(&ks),
        revocation::same_second_revocation_is_recovered_without_a_storm(&ks),
        wrong_password::a_wrong_password_fails_check_and_loses_nothing(&ks),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keystone_stopped_for_30_s_while_a_token_expires() {
    let test = "real_keystone::keystone_stopped_for_30_s_while_a_token_expires";
    let Some(venv) = venv_or_skip(test) else {
        return;
    };
    outage::stopped_for_30_s_while_a_token_expires(&venv).await;
}
