//! The watch cut while the Secret's resource version has expired: other Secrets change, etcd is
//! compacted to its current revision, and the API server restarts (its watch cache starts over
//! at the current revision; a watch from the Secret's own, older resource version would be
//! answered 410 Gone). The forwarder must be watching again afterwards, not polling with GETs,
//! and see later changes through that watch; nothing lost meanwhile.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::*;

/// Whether the forwarder read the Secret (a GET answered 200) after the `skip` first requests.
fn read_since(kube: &Kube, skip: usize) -> bool {
    kube.secret_requests(BFF_USER)
        .get(skip..)
        .is_some_and(|r| r.iter().any(|e| e.verb == "get" && e.code == 200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_is_established_again_and_sees_later_changes() {
    let case =
        "real_kube::watch_expiry::an_expired_watch_is_established_again_and_sees_later_changes";
    let Some(mut kube) = setup(case) else {
        return;
    };
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let c = kube.spawn_forwarder(case, &kube.bff, SECRET, &ks, &bf);
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(c.line, stop.clone());
    wait_stored(&bf, 200, &c).await;
    assert!(
        read_since(&kube, 0),
        "the forwarder read no Secret before its first login"
    );

    // History moves on past the Secret's resource version, and is compacted away.
    let others: String = (0..5)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: other-{i}\n  namespace: {NS}\nstringData:\n  x: \"{i}\"\n---\n"
            )
        })
        .collect();
    kube.cluster.kubectl_stdin(&["apply", "-f", "-"], &others);
    let rev = kube.cluster.compact();
    let before_restart = kube.secret_requests(BFF_USER).len();
    kube.cluster.stop_apiserver();
    kube.cluster.start_apiserver();
    eprintln!("compacted etcd at revision {rev}; API server restarted");

    // The forwarder reads the Secret again (its watch follows that GET at once; the audit log
    // shows a watch only when it ends) ...
    let end = Instant::now() + WAIT;
    while !read_since(&kube, before_restart) {
        assert!(
            Instant::now() < end,
            "{case}: no GET of the Secret after the restart; requests {:?}\nlog tail:\n{}",
            kube.secret_requests(BFF_USER).get(before_restart..),
            c.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and later changes arrive through it.
    for (i, key) in ["k2", "k3"].into_iter().enumerate() {
        ks.set_credentials("alice", key);
        kube.apply_secret("alice", key);
        // Longer than the forwarder's longest retry delay (60 s): a forwarder that only polls
        // shows here as a 410 in its log rather than as a timeout.
        wait_login_with(&ks, key, Duration::from_secs(90), &c).await;
        ks.revoke_all();
        wait_stored(&bf, bf.stored_count() + 100 * (i + 1), &c).await;
    }
    // A 410 for the Secret means a watch from an expired resource version: the re-watch must not be.
    let expired: Vec<String> = c
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("HTTP 410") || l.contains("too old resource version"))
        .collect();
    let after: Vec<AuditEntry> = kube.secret_requests(BFF_USER)[before_restart..].to_vec();
    assert!(
        expired.is_empty(),
        "{case}: the forwarder watched from an expired resource version after the restart:\n{}\nrequests since the restart: {after:?}",
        expired.join("\n")
    );
    let s = stop_and_account(c, &bf, stop, load).await;
    assert_eq!(s["auth"]["credential_reloads"], 2, "k1 -> k2 -> k3: {s:#}");
    eprintln!(
        "measurement: requests by the forwarder since the restart: {}",
        after
            .iter()
            .map(|e| format!("{} {} {}", e.verb, e.code, e.stage))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
