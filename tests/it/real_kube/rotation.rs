//! A new key applied to the Secret with `kubectl apply` reaches the running forwarder through
//! its watch; the Secret deleted keeps the last good credentials, and created again brings the
//! next key. Steady load throughout, nothing lost, and the API server saw nothing but get and
//! watch of that one Secret from the forwarder.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_deleted_and_recreated_secret_rotates_without_loss() {
    let case = "real_kube::rotation::applied_deleted_and_recreated_secret_rotates_without_loss";
    let Some(kube) = setup(case) else {
        return;
    };
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let c = kube.spawn_forwarder(case, &kube.bff, SECRET, &ks, &bf);
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(c.line, stop.clone());
    wait_stored(&bf, 200, &c).await;
    assert_eq!(ks.auth_requests(), 1, "one login with k1");

    // 1. The operator resets the key in identity and applies it to the Secret.
    ks.set_credentials("alice", "k2");
    kube.apply_secret("alice", "k2");
    wait_login_with(&ks, "k2", WAIT, &c).await;
    for t in ks.issued_tokens().iter().take(1) {
        ks.revoke(t);
    }
    wait_stored(&bf, bf.stored_count() + 200, &c).await;

    // 2. The Secret is deleted: the forwarder keeps k2, even for a new login.
    kube.cluster
        .kubectl(&["delete", "secret", SECRET, "--namespace", NS]);
    c.wait_status(WAIT, "the deletion reported", |s| {
        s["auth"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("was deleted"))
    })
    .await;
    let logins_before = ks.logins().len();
    ks.revoke_all();
    wait_stored(&bf, bf.stored_count() + 200, &c).await;
    let relogin = &ks.logins()[logins_before..];
    assert!(
        !relogin.is_empty() && relogin.iter().all(|l| l.accepted && l.secret == "k2"),
        "while the Secret is gone, logins use the last good key: {:?}",
        relogin
            .iter()
            .map(|l| (&l.secret, l.accepted))
            .collect::<Vec<_>>()
    );

    // 3. Created again with the next key.
    ks.set_credentials("alice", "k3");
    kube.apply_secret("alice", "k3");
    wait_login_with(&ks, "k3", WAIT, &c).await;
    ks.revoke_all();
    wait_stored(&bf, bf.stored_count() + 200, &c).await;

    let logins: Vec<(String, bool)> = ks
        .logins()
        .iter()
        .map(|l| (l.secret.clone(), l.accepted))
        .collect();
    assert!(
        logins.iter().all(|(_, ok)| *ok),
        "never a login with a stale key: {logins:?}"
    );
    let s = stop_and_account(c, &bf, stop, load).await;
    assert_eq!(
        s["auth"]["credential_source"],
        format!("kubernetes secret {NS}/{SECRET}"),
        "{s:#}"
    );
    assert_eq!(s["auth"]["credential_reloads"], 2, "k1 -> k2 -> k3: {s:#}");
    eprintln!("measurement: logins {logins:?}; auth status {}", s["auth"]);

    // The chart's Role is all it needed: only get and watch of that one Secret, none refused.
    let seen = kube.secret_requests(BFF_USER);
    assert!(seen.iter().any(|e| e.verb == "watch"), "no watch: {seen:?}");
    // (A 403 before the first success would be the API server's RBAC cache not yet holding the
    // binding just applied; none after it.)
    let first_ok = seen
        .iter()
        .position(|e| e.code == 200)
        .unwrap_or(seen.len());
    for (i, e) in seen.iter().enumerate() {
        assert!(
            (e.verb == "get" || e.verb == "watch")
                && e.resource == "secrets"
                && e.name == SECRET
                && (e.code == 200 || (i < first_ok && e.code == 403)),
            "a request outside get/watch of {SECRET}, or refused: {e:?} (all: {seen:?})"
        );
    }
}
