//! The Helm chart against a real Kubernetes 1.20.2 API server (see `support::kube_cluster`):
//! rendered with `helm template --validate` against it (so `.Capabilities` are the server's
//! own discovery and every object is checked against its OpenAPI schema), then sent with
//! `kubectl apply --validate=true --dry-run=server` and applied for real (the server has no
//! nodes and no controllers: nothing runs, the objects are only stored). Sidecar and standalone
//! modes, each with the spool on a PersistentVolumeClaim and a PodDisruptionBudget, credentials
//! from a mounted Secret and through the Kubernetes API, and the values file that sets every
//! option, and standalone autoscaling; the PodDisruptionBudget must come out as policy/v1beta1
//! (1.20 has no policy/v1), the HorizontalPodAutoscaler as autoscaling/v2beta2, and no container
//! may carry a lifecycle hook (a preStop `sleep` needs 1.30).

use std::path::Path;
use std::process::Command;

use crate::support::kube_cluster::{KubeCluster, KubeTools, run_ok};

/// Each case: a namespace of its own (so `helm template --validate`, which refuses objects
/// that already exist, sees none), the values files of `ci/`, `--set` values, and the
/// `shutdown_delay` config.toml must say (`forwarder.preStopSleepSeconds` in sidecar mode).
const CASES: &[(&str, &[&str], &str, &str)] = &[
    (
        "sidecar",
        &["spool-pvc-values.yaml"],
        "podDisruptionBudget.enabled=true,networkPolicy.enabled=true",
        "5",
    ),
    (
        "standalone",
        &["standalone-values.yaml"],
        "auth.source=kubernetes-api,rbac.create=true,spool.persistence.enabled=true,\
         replicaCount=1,podDisruptionBudget.enabled=true,networkPolicy.enabled=true",
        "0",
    ),
    (
        "all-options",
        &["all-options-values.yaml"],
        // The ServiceMonitor and PrometheusRule are CRDs this server does not have.
        "metrics.serviceMonitor.enabled=false,metrics.prometheusRule.enabled=false,podDisruptionBudget.enabled=true",
        "10",
    ),
    (
        "autoscaling",
        &["autoscaling-values.yaml"],
        "metrics.serviceMonitor.enabled=false,metrics.prometheusRule.enabled=false",
        "0",
    ),
];

fn chart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/blueflood-forward")
}

/// `helm template --validate` of `case` into `ns`, against the cluster.
fn render(cluster: &KubeCluster, ns: &str, files: &[&str], sets: &str) -> String {
    let mut cmd = Command::new(&cluster.tools.helm);
    cmd.args(["template", "bff"])
        .arg(chart())
        .args(["--namespace", ns, "--validate", "--kubeconfig"])
        .arg(&cluster.admin_kubeconfig)
        .args(["--set", sets])
        // helm's cache and config: the cluster's temporary directory, not the user's.
        .env("HOME", cluster.dir.path())
        .env_remove("KUBECONFIG");
    for f in files {
        cmd.arg("-f").arg(chart().join("ci").join(f));
    }
    run_ok(&format!("helm template --validate ({ns})"), cmd)
}

/// The manifest's documents as (apiVersion, kind, text), the comments and empties left out.
fn documents(manifest: &str) -> Vec<(String, String, String)> {
    manifest
        .split("\n---")
        .filter_map(|doc| {
            let field = |name: &str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            Some((field("apiVersion:")?, field("kind:")?, doc.to_owned()))
        })
        .collect()
}

#[test]
fn the_chart_installs_on_kubernetes_1_20() {
    let Some(tools) =
        KubeTools::from_env("real_kube::chart::the_chart_installs_on_kubernetes_1_20")
    else {
        return;
    };
    let cluster = KubeCluster::start(tools, &[]);
    let version = cluster.kubectl(&["version", "-o", "json"]);
    assert!(
        version.contains("\"minor\": \"20\""),
        "not the 1.20 server this test is about:\n{version}"
    );
    for (case, files, sets, delay) in CASES {
        let ns = format!("bff-{case}");
        cluster.kubectl(&["create", "namespace", &ns]);
        let manifest = render(&cluster, &ns, files, sets);
        let docs = documents(&manifest);
        let kinds: Vec<&str> = docs.iter().map(|(_, k, _)| k.as_str()).collect();
        eprintln!("{case}: {kinds:?}");
        for want in ["Deployment", "ConfigMap", "Service", "PodDisruptionBudget"] {
            assert!(kinds.contains(&want), "{case}: no {want} in {kinds:?}");
        }
        for (api, kind, text) in &docs {
            if kind == "PodDisruptionBudget" {
                assert_eq!(api, "policy/v1beta1", "{case}: the PDB for 1.20:\n{text}");
            }
            if kind == "HorizontalPodAutoscaler" {
                assert_eq!(
                    api, "autoscaling/v2beta2",
                    "{case}: the HPA for 1.20:\n{text}"
                );
            }
            assert!(
                !text.contains("lifecycle:"),
                "{case}: a lifecycle hook in {kind}:\n{text}"
            );
        }
        let (_, _, config) = docs
            .iter()
            .find(|(_, k, t)| k == "ConfigMap" && t.contains("config.toml"))
            .unwrap_or_else(|| panic!("{case}: no config.toml ConfigMap"));
        assert!(
            config
                .lines()
                .any(|l| l.trim() == format!("shutdown_delay = {delay}")),
            "{case}: no shutdown_delay in config.toml:\n{config}"
        );

        // Every object accepted by the server (schema, admission), then stored.
        let dry = cluster.kubectl_stdin(
            &[
                "apply",
                "--validate=true",
                "--dry-run=server",
                "-o",
                "name",
                "-f",
                "-",
            ],
            &manifest,
        );
        assert_eq!(
            dry.lines().count(),
            docs.len(),
            "{case}: the server's dry run named {dry:?} for {kinds:?}"
        );
        let applied = cluster.kubectl_stdin(&["apply", "--validate=true", "-f", "-"], &manifest);
        assert_eq!(
            applied.lines().filter(|l| l.ends_with(" created")).count(),
            docs.len(),
            "{case}: kubectl apply said:\n{applied}"
        );
        let stored = cluster.kubectl_stdin(&["get", "-o", "name", "-f", "-"], &manifest);
        assert_eq!(
            stored.lines().count(),
            docs.len(),
            "{case}: stored {stored}"
        );
        let pdb = cluster.kubectl(&[
            "get",
            "poddisruptionbudgets.v1beta1.policy",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].spec.maxUnavailable}",
        ]);
        assert_eq!(pdb.trim(), "1", "{case}: the stored PDB's maxUnavailable");
        if *case == "autoscaling" {
            let hpa = cluster.kubectl(&[
                "get",
                "horizontalpodautoscalers.v2beta2.autoscaling",
                "-n",
                &ns,
                "-o",
                "jsonpath={.items[*].spec.metrics[*].type}",
            ]);
            // 1.20 stores HPAs as autoscaling/v1 (the rest in an annotation): the order of the
            // metrics read back is not the order sent.
            let mut types: Vec<&str> = hpa.split_whitespace().collect();
            types.sort_unstable();
            assert_eq!(
                types,
                ["Pods", "Resource", "Resource"],
                "{case}: the stored HPA"
            );
        }
    }
}
