//! `helm install` beside carbon-relay: the pod goes Ready through the kubelet reading
//! `/readyz`; lines sent to carbon-relay's port arrive in Blueflood (carbon-relay → pickle →
//! forwarder → Blueflood); through a 60 s Blueflood outage the kubelet sees the pod not ready
//! (its buffer above the high-water mark) but alive (`/livez`: no restart), and the outage's
//! points arrive afterwards.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Release, blocking, container, pod_ready, ports, restarts, slot, values};
use crate::reliability_child::line_load;
use crate::support::blueflood::BluefloodDouble;

const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_beside_carbon_relay_is_ready_delivers_and_outlives_an_outage() {
    let Some(cluster) = super::Cluster::from_env("real_cluster::install") else {
        return;
    };
    let _slot = slot().await;
    let bf = BluefloodDouble::start().await;
    let ports = ports();
    // Memory only (no spool) and a small buffer, so the outage's points raise the fill above
    // the high-water mark; `block` pushes back on carbon-relay instead of dropping.
    let v = values(
        &cluster,
        ports,
        &bf.url(),
        json!({
            "spool": {"enabled": false},
            "forwarder": {"config": {
                "buffer_bytes": "2MiB", "ready_high_water": 0.2, "buffer_policy": "block"
            }},
        }),
    );
    let c = cluster.clone();
    let rel = blocking(move || {
        c.fresh_namespace("bff-install");
        Release::install(&c, "bff-install", ports, &v)
    })
    .await;

    // helm --wait returned: the Deployment is available, so the kubelet found /readyz 200.
    let pod = rel.pod();
    assert!(pod_ready(&pod), "pod not Ready:\n{}", rel.describe());
    for c in ["carbon-relay", "blueflood-forward"] {
        assert_eq!(container(&pod, c)["ready"], true, "{c} not ready");
    }
    let started = container(&pod, "blueflood-forward")["state"]["running"]["startedAt"].clone();

    // Lines into carbon-relay's line port arrive in Blueflood through the forwarder.
    let first = super::hundred_through_the_relay(&rel, &bf, "cluster.first").await;
    let names: Vec<String> = bf.stored().iter().map(|p| p.metric_name.clone()).collect();
    assert!(
        names.iter().any(|n| n == "cluster.first.b0.m99"),
        "{names:?}"
    );
    assert!(bf.stored().iter().all(|p| p.tenant == "t1"));

    // Blueflood goes away for 60 s while points keep coming.
    bf.set_down(true);
    let down_at = Instant::now();
    // Until the buffer is above the high-water mark (bounded: `block` keeps the rest in
    // carbon-relay's queue, which pushes back on this sender).
    let mut during = 0;
    for b in 0..200 {
        let fill = rel
            .status()
            .await
            .map(|s| s["buffer"]["fill_ratio"].as_f64());
        if fill.flatten().is_some_and(|f| f > 0.3) {
            break;
        }
        let stem = format!("cluster.outage.{b}");
        during += line_load(rel.ports.relay_line_addr(), &stem, 1, 1_000, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fill = rel.status().await.expect("status")["buffer"].clone();
    eprintln!("real_cluster install: {during} points sent during the outage, buffer {fill}");
    // The kubelet reads /readyz (503: buffer above the high-water mark) and marks the pod not
    // ready.
    let r = std::sync::Arc::new(rel);
    let r2 = r.clone();
    blocking(move || {
        r2.wait_pods("pod NotReady during the outage", OUTAGE, |p| {
            p.len() == 1 && !pod_ready(&p[0])
        })
    })
    .await;
    if let Some(rest) = OUTAGE.checked_sub(down_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let pod = r.pod();
    assert_eq!(
        restarts(&pod),
        0,
        "restarted during the outage:\n{}",
        r.describe()
    );
    bf.set_down(false);

    let total = (first + during) as usize;
    assert!(
        bf.wait_for_stored(total, Duration::from_secs(180)).await,
        "{} of {total} stored after the outage\n{}",
        bf.stored_count(),
        r.describe()
    );
    let r2 = r.clone();
    blocking(move || {
        r2.wait_pods("pod Ready again", Duration::from_secs(60), |p| {
            p.len() == 1 && pod_ready(&p[0])
        })
    })
    .await;
    let pod = r.pod();
    assert_eq!(restarts(&pod), 0, "restarted:\n{}", r.describe());
    assert_eq!(
        container(&pod, "blueflood-forward")["state"]["running"]["startedAt"],
        started,
        "the forwarder container was started again"
    );
    let status = r.status().await.expect("status");
    assert_eq!(
        status["ledger"]["dropped_total"].as_u64(),
        Some(0),
        "dropped: {status}"
    );
}
