//! Reading `kubectl get pods -o json`: a container's status, readiness, restarts, the name.

use serde_json::Value;

/// A container's status in a pod (`status.containerStatuses[name]`).
pub fn container(pod: &Value, name: &str) -> Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

/// The pod's `Ready` condition is True (the kubelet read every readiness probe).
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Sum of restartCount over the pod's containers.
pub fn restarts(pod: &Value) -> u64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_u64()).sum())
        .unwrap_or(0)
}

pub fn name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or("").to_string()
}
