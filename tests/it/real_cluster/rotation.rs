//! Keystone keys rotated the way users do it: the README's `kubectl create secret ...
//! --dry-run=client -o yaml | kubectl apply -f -` with a new key, the old key and its tokens
//! revoked at the Keystone double at once (the worst order: nothing valid until the new key is
//! read). With `auth.source: files` the kubelet swaps the mounted Secret (`..data`; its
//! syncFrequency lowered to 10 s by scripts/check-cluster.sh); with `kubernetes-api` the
//! forwarder watches the Secret through the chart's Role. Either way it logs in with the new
//! key without a restart, under a steady load, and no datapoint is lost.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Cluster, Load, Release, blocking, pod_ready, ports, restarts, slot, values};
use crate::support::blueflood::BluefloodDouble;
use crate::support::keystone::KeystoneDouble;

/// The README's rotation command, namespace and Secret name aside.
fn readme_rotation(ns: &str, key: &str) -> String {
    format!(
        "kubectl -n {ns} create secret generic keystone \
         --from-literal=username=alice --from-literal=apiKey={key} \
         --dry-run=client -o yaml | kubectl apply -f -"
    )
}

async fn rotate_with(cluster: Cluster, source: &str, ns: &str) {
    let _slot = slot().await;
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);
    let c = cluster.clone();
    let ns_owned = ns.to_string();
    blocking(move || {
        c.fresh_namespace(&ns_owned);
        c.shell(&readme_rotation(&ns_owned, "k1"));
    })
    .await;
    let ports = ports();
    let mut extra = json!({
        "auth": {"enabled": true, "method": "rax-kskey", "url": ks.url(), "source": source,
                 "existingSecret": "keystone"},
    });
    if source == "kubernetes-api" {
        // No kube-proxy or pod network: the API server is at 127.0.0.1 (its certificate
        // names it), not at the kubernetes Service's cluster IP.
        extra["rbac"] = json!({"create": true});
        extra["forwarder"] = json!({"extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": cluster.api_port.to_string()},
        ]});
    }
    let v = values(&cluster, ports, &bf.url(), extra);
    let c = cluster.clone();
    let ns_owned = ns.to_string();
    let rel =
        std::sync::Arc::new(blocking(move || Release::install(&c, &ns_owned, ports, &v)).await);
    assert!(pod_ready(&rel.pod()));

    let load = Load::start(
        rel.ports.relay_line_addr(),
        &format!("cluster.{source}"),
        200,
        Duration::from_millis(100),
    );
    assert!(
        bf.wait_for_stored(1_000, Duration::from_secs(60)).await,
        "nothing delivered with k1: {} stored\n{}",
        bf.stored_count(),
        rel.describe()
    );
    assert!(ks.logins().iter().any(|l| l.accepted && l.secret == "k1"));

    let c = cluster.clone();
    let cmd = readme_rotation(ns, "k2");
    blocking(move || c.shell(&cmd)).await;
    ks.set_credentials("alice", "k2");
    ks.revoke_all();
    let rotated = Instant::now();
    let end = rotated + Duration::from_secs(150);
    while !ks.logins().iter().any(|l| l.accepted && l.secret == "k2") {
        assert!(
            Instant::now() < end,
            "no login with k2 within 150 s\n{}",
            rel.describe()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "real_cluster rotation ({source}): logged in with the new key {:.1} s after kubectl apply",
        rotated.elapsed().as_secs_f64()
    );
    // Delivery goes on with the new key's token.
    let after = bf.stored_count();
    assert!(
        bf.wait_for_stored(after + 1_000, Duration::from_secs(60))
            .await,
        "nothing delivered after the rotation\n{}",
        rel.describe()
    );
    let sent = load.stop().await as usize;
    assert!(
        bf.wait_for_stored(sent, Duration::from_secs(120)).await,
        "{} of {sent} stored\n{}",
        bf.stored_count(),
        rel.describe()
    );
    assert_eq!(bf.stored_count(), sent);
    let pod = rel.pod();
    assert_eq!(restarts(&pod), 0, "restarted:\n{}", rel.describe());
    let status = rel.status().await.expect("status");
    assert_eq!(
        status["ledger"]["dropped_total"].as_u64(),
        Some(0),
        "{status}"
    );
    assert_eq!(
        status["ledger"]["delivered"].as_u64(),
        Some(sent as u64),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_through_the_mounted_secret_is_used_without_a_restart() {
    let Some(cluster) = Cluster::from_env("real_cluster::rotation") else {
        return;
    };
    rotate_with(cluster, "files", "bff-rotate-files").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_through_the_kubernetes_api_is_used_without_a_restart() {
    let Some(cluster) = Cluster::from_env("real_cluster::rotation") else {
        return;
    };
    rotate_with(cluster, "kubernetes-api", "bff-rotate-api").await;
}
