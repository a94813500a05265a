//! The chart's PrometheusRule (`metrics.prometheusRule.enabled`) against the real promtool: the
//! rendered `spec` is a rules file `promtool check rules` accepts, `promtool test rules` runs
//! `alerts.test.yaml` on it (every alert fires on a series that should fire it and stays quiet
//! otherwise), the same tests fail when a threshold moves (they bite), values reach the rules,
//! and every metric a rule reads is one a real forwarder (spool on) serves on `/metrics`, so a
//! typo'd name cannot hide behind unit tests that feed the typo.
//!
//! Needs `BFF_HELM` (what `scripts/check-deploy.sh --print-helm` prints; `.ci/run` exports it)
//! and promtool; skips visibly without them, fails when they are required.

use super::program;
use crate::reliability_child;
use crate::support::{self, blueflood::BluefloodDouble};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TESTS: &str = include_str!("alerts.test.yaml");

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/blueflood-forward")
}

/// The PrometheusRule rendered for release `bf` in namespace `graphite` with `sets`, as a
/// promtool rules file: the object's `spec`, moved out by one indent (it is the last key).
fn rules_file(helm: &Path, sets: &[&str]) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "bf"])
        .arg(chart())
        .args(["--namespace", "graphite"])
        .args(["--set", "metrics.prometheusRule.enabled=true"])
        .args(["--show-only", "templates/prometheusrule.yaml"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, spec) = text
        .split_once("\nspec:\n")
        .unwrap_or_else(|| panic!("no spec in the rendered PrometheusRule:\n{text}"));
    spec.lines()
        .map(|l| {
            assert!(
                l.is_empty() || l.starts_with("  "),
                "spec is not the last key: {l:?}\n{text}"
            );
            format!("{}\n", l.get(2..).unwrap_or(""))
        })
        .collect()
}

/// Runs promtool with `args` in `dir`; returns whether it passed and what it said.
fn promtool(promtool: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

struct Tools {
    helm: PathBuf,
    promtool: PathBuf,
}

fn tools(case: &str) -> Option<Tools> {
    let helm = std::env::var("BFF_HELM").ok().map(PathBuf::from);
    let promtool = program("promtool", "BFF_PROMTOOL");
    match (helm.filter(|h| h.is_file()), promtool) {
        (Some(helm), Some(promtool)) => Some(Tools { helm, promtool }),
        _ => {
            support::prerequisite_missing(
                case,
                "needs BFF_HELM (scripts/check-deploy.sh --print-helm) and promtool (scripts/real-prometheus.sh)",
            );
            None
        }
    }
}

#[test]
fn the_chart_alerts_pass_promtool_check_and_its_unit_tests_and_the_tests_bite() {
    let Some(t) =
        tools("the_chart_alerts_pass_promtool_check_and_its_unit_tests_and_the_tests_bite")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("alerts.test.yaml"), TESTS).expect("write tests");
    let rules = rules_file(&t.helm, &[]);
    std::fs::write(dir.path().join("rules.yaml"), &rules).expect("write rules");

    let (ok, said) = promtool(&t.promtool, dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(ok, "promtool check rules:\n{said}\n--- rules:\n{rules}");
    assert!(said.contains("SUCCESS: 8 rules found"), "{said}");
    let (ok, said) = promtool(
        &t.promtool,
        dir.path(),
        &["test", "rules", "alerts.test.yaml"],
    );
    assert!(ok, "promtool test rules:\n{said}\n--- rules:\n{rules}");

    // A lag threshold of 10 intervals (300 s) instead of 4 (120 s): the lag case must fail, and
    // only it. So the unit tests read the thresholds the chart renders.
    let moved = rules_file(
        &t.helm,
        &["metrics.prometheusRule.alerts.deliveryLag.intervals=10"],
    );
    std::fs::write(dir.path().join("rules.yaml"), &moved).expect("write rules");
    let (ok, said) = promtool(
        &t.promtool,
        dir.path(),
        &["test", "rules", "alerts.test.yaml"],
    );
    assert!(!ok, "the tests pass with a moved threshold:\n{said}");
    assert!(
        said.contains("alertname: BluefloodForwardDeliveryLag")
            && !said.contains("alertname: BluefloodForwardDown"),
        "{said}"
    );
}

#[test]
fn the_chart_values_reach_the_rules() {
    let Some(t) = tools("the_chart_values_reach_the_rules") else {
        return;
    };
    let rules = rules_file(
        &t.helm,
        &[
            "forwarder.interval=10",
            "metrics.prometheusRule.alerts.deliveryLag.intervals=3",
            "metrics.prometheusRule.alerts.datapointsDropped.ignoreReasons={out_of_window,nan}",
            "metrics.prometheusRule.alerts.spoolFilling.for=30m",
            "metrics.prometheusRule.selector=job=\"graphite/carbon\"",
            "metrics.prometheusRule.alertLabels.team=metrics",
        ],
    );
    for want in [
        "(blueflood_forward_oldest_pending_age_seconds{job=\"graphite/carbon\"}) > 30\n",
        "{job=\"graphite/carbon\", reason!~\"out_of_window|nan\"}[10m]",
        "for: 30m",
        "team: metrics",
    ] {
        assert!(rules.contains(want), "{want:?} not in:\n{rules}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), &rules).expect("write rules");
    let (ok, said) = promtool(&t.promtool, dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(ok, "promtool check rules:\n{said}\n--- rules:\n{rules}");
}

/// Every `blueflood_forward_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("blueflood_forward_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_read_is_served_by_a_real_forwarder() {
    let Some(t) = tools("every_metric_the_alerts_read_is_served_by_a_real_forwarder") else {
        return;
    };
    let rules = rules_file(&t.helm, &[]);
    let exprs: String = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr: "))
        .collect::<Vec<_>>()
        .join("\n");
    let read = metric_names(&exprs);
    assert!(read.len() >= 6, "{read:?}");
    let bf = BluefloodDouble::start().await;
    let spool = tempfile::tempdir().expect("tempdir");
    let spool_s = spool.path().display().to_string();
    let c = reliability_child::spawn("rules-names", &bf.url(), &["--spool-dir", &spool_s]);
    let served: BTreeSet<String> = c
        .metrics()
        .await
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series).to_string())
        .collect();
    let missing: Vec<&String> = read.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the alerts read {missing:?}, which the forwarder does not serve; it serves {served:?}"
    );
    c.stop(Duration::from_secs(30)).await;
}
