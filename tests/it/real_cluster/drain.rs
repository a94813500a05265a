//! `kubectl delete pod` with a backlog: the kubelet's SIGTERM starts the forwarder's
//! `shutdown_delay` (chart: `forwarder.preStopSleepSeconds`) and drain, which deliver
//! everything before the container exits. When Blueflood is down past `shutdown_timeout`, what
//! could not be sent goes to the spool: on a PersistentVolumeClaim the next pod replays it; on
//! the default emptyDir it is gone with the pod (the old pod's last log line says how many it
//! left behind; the chart's README says so too).

use std::os::unix::fs::chown;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    Cluster, Release, blocking, container, name, pod_ready, ports, restarts, slot, values,
};
use crate::reliability_child::{line_load, n};
use crate::support::blueflood::BluefloodDouble;

/// Sends `points` lines through carbon-relay and waits until the forwarder has them all.
async fn through_the_relay(rel: &Release, stem: &str, points: usize) -> u64 {
    let sent = line_load(
        rel.ports.relay_line_addr(),
        stem,
        points / 1_000,
        1_000,
        Duration::from_millis(20),
    )
    .await;
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let received = rel
            .status()
            .await
            .map(|s| n(&s["ledger"]["received_total"]))
            .unwrap_or(0);
        if received == sent {
            return sent;
        }
        assert!(
            std::time::Instant::now() < end,
            "forwarder received {received} of {sent}\n{}",
            rel.describe()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes the pod (default grace) and waits until its replacement is Ready; returns the old
/// forwarder's final "stopped" log line, after checking that the chart's shutdown delay ran
/// before the drain.
async fn delete_pod_and_wait_for_the_next(rel: &Arc<Release>) -> Value {
    let old = name(&rel.pod());
    let logs = rel.follow_logs(&old);
    let r = rel.clone();
    let o = old.clone();
    blocking(move || {
        let t = std::time::Instant::now();
        let del = [
            "-n",
            &r.ns,
            "delete",
            "pod",
            &o,
            "--wait=true",
            "--timeout=170s",
        ];
        r.cluster.kubectl_waiting(&del);
        eprintln!(
            "real_cluster drain: {o} deleted in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        r.wait_pods("the next pod Ready", super::POD_WAIT, |p| {
            p.len() == 1 && name(&p[0]) != o && pod_ready(&p[0])
        });
    })
    .await;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = logs.lines();
        if let Some(l) = lines.iter().find(|l| l["message"] == "stopped") {
            let said: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
            let at = |m: &str| said.iter().position(|s| s.starts_with(m));
            let (delay, over, drain) = (
                at("shutting down after shutdown_delay"),
                at("shutdown_delay over"),
                at("shutting down: draining"),
            );
            assert!(
                delay < over && over < drain && delay.is_some(),
                "no shutdown delay before the drain: {said:?}"
            );
            return l.clone();
        }
        assert!(
            std::time::Instant::now() < end,
            "the old forwarder ({old}) logged no \"stopped\" line:\n{:?}",
            logs.lines()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn field(line: &Value, k: &str) -> u64 {
    line[k]
        .as_u64()
        .or_else(|| line["fields"][k].as_u64())
        .unwrap_or_else(|| panic!("no {k} in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_pod_with_a_backlog_delivers_everything_before_the_container_exits() {
    let Some(cluster) = Cluster::from_env("real_cluster::drain") else {
        return;
    };
    let _slot = slot().await;
    let bf = BluefloodDouble::start().await;
    let ports = ports();
    let v = values(
        &cluster,
        ports,
        &bf.url(),
        json!({"forwarder": {"shutdownTimeout": 90}}),
    );
    let c = cluster.clone();
    let rel = Arc::new(
        blocking(move || {
            c.fresh_namespace("bff-drain");
            Release::install(&c, "bff-drain", ports, &v)
        })
        .await,
    );
    // A slow Blueflood: every answer waits, so a backlog builds in the forwarder.
    bf.set_delay(Some(Duration::from_millis(1_000)));
    let sent = through_the_relay(&rel, "cluster.drain", 10_000).await;
    let s = rel.status().await.expect("status");
    let behind = sent - n(&s["ledger"]["delivered"]);
    assert!(behind > 0, "no backlog to drain: {s}");
    let stopped = delete_pod_and_wait_for_the_next(&rel).await;
    assert_eq!(field(&stopped, "received"), sent, "{stopped}");
    assert_eq!(field(&stopped, "delivered"), sent, "{stopped}");
    assert_eq!(field(&stopped, "dropped"), 0, "{stopped}");
    assert_eq!(bf.stored_count(), sent as usize);
    eprintln!("real_cluster drain: {behind} of {sent} points undelivered at `kubectl delete pod`");
    assert_eq!(restarts(&rel.pod()), 0);
}

/// Blueflood down, a 3 s shutdown_timeout: the old pod spools what it holds. Returns the
/// release, the Blueflood double, what was sent and the old pod's "stopped" line.
async fn spooled_at_deletion(
    cluster: Cluster,
    ns: &str,
    spool: Value,
) -> (Arc<Release>, BluefloodDouble, u64, Value) {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let ports = ports();
    let v = values(
        &cluster,
        ports,
        &bf.url(),
        json!({"spool": spool, "forwarder": {"shutdownTimeout": 3}}),
    );
    let c = cluster.clone();
    let ns = ns.to_string();
    let rel = Arc::new(
        blocking(move || {
            c.fresh_namespace(&ns);
            Release::install(&c, &ns, ports, &v)
        })
        .await,
    );
    let sent = through_the_relay(&rel, "cluster.spool", 5_000).await;
    let stopped = delete_pod_and_wait_for_the_next(&rel).await;
    assert_eq!(field(&stopped, "received"), sent, "{stopped}");
    assert_eq!(field(&stopped, "delivered"), 0, "{stopped}");
    assert_eq!(
        field(&stopped, "dropped"),
        0,
        "spooled, not dropped: {stopped}"
    );
    (rel, bf, sent, stopped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_old_pod_spooled_on_a_pvc_is_replayed_by_the_next_pod() {
    let Some(cluster) = Cluster::from_env("real_cluster::drain") else {
        return;
    };
    let _slot = slot().await;
    // A static hostPath PersistentVolume (no provisioner here), writable by the forwarder.
    let dir = tempfile::tempdir().expect("pv dir");
    chown(dir.path(), Some(65532), Some(65532)).expect("chown pv dir");
    let pv = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: bff-spool-pv\nspec:\n  \
         capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  \
         persistentVolumeReclaimPolicy: Retain\n  storageClassName: bff-manual\n  \
         hostPath: {{path: {}, type: Directory}}\n",
        dir.path().display()
    );
    let c = cluster.clone();
    blocking(move || {
        let _ = c.try_kubectl(&["delete", "pv", "bff-spool-pv", "--wait=true"]);
        let f = tempfile::NamedTempFile::new().expect("pv file");
        std::fs::write(f.path(), pv).expect("write pv");
        c.kubectl(&["apply", "-f", &f.path().display().to_string()]);
    })
    .await;
    let spool = json!({"persistence": {"enabled": true, "storageClass": "bff-manual"}});
    let (rel, bf, sent, _) = spooled_at_deletion(cluster.clone(), "bff-spool-pvc", spool).await;
    let s = rel.status().await.expect("status of the next pod");
    assert_eq!(
        n(&s["ledger"]["recovered"]),
        sent,
        "the next pod's spool: {s}"
    );
    bf.set_down(false);
    assert!(
        bf.wait_for_stored(sent as usize, Duration::from_secs(120))
            .await,
        "{} of {sent} replayed\n{}",
        bf.stored_count(),
        rel.describe()
    );
    assert_eq!(
        container(&rel.pod(), "blueflood-forward")["restartCount"],
        0
    );
    drop(rel);
    let c = cluster.clone();
    blocking(move || c.kubectl_waiting(&["delete", "pv", "bff-spool-pv", "--wait=true"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_old_pod_spooled_on_an_emptydir_is_lost_with_the_pod() {
    let Some(cluster) = Cluster::from_env("real_cluster::drain") else {
        return;
    };
    let _slot = slot().await;
    let (rel, bf, sent, stopped) =
        spooled_at_deletion(cluster, "bff-spool-emptydir", json!({"enabled": true})).await;
    let s = rel.status().await.expect("status of the next pod");
    assert_eq!(n(&s["ledger"]["recovered"]), 0, "a fresh emptyDir: {s}");
    bf.set_down(false);
    // The next pod delivers what it receives; the old pod's spool went with its emptyDir.
    super::hundred_through_the_relay(&rel, &bf, "cluster.after").await;
    assert!(
        bf.stored()
            .iter()
            .all(|p| p.metric_name.starts_with("cluster.after.")),
        "a point of the old pod's spool arrived"
    );
    eprintln!(
        "real_cluster drain: {sent} points spooled on an emptyDir, lost with the pod ({stopped})"
    );
}
