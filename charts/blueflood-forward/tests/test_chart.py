"""Assertions on `helm template` output: what the chart promises in its README."""

import os
import re
import subprocess

import pytest

from conftest import ADMIN_TOKEN_DIR, RENDERS, assert_binary_accepts, render

FORWARDER = "blueflood-forward"
RELAY = "carbon-relay"


def port_of(container, name):
    (p,) = [p for p in container["ports"] if p["name"] == name]
    return p["containerPort"]


# ---------------------------------------------------------------- credentials


@pytest.mark.parametrize("name", ["sidecar", "standalone"])
def test_secret_is_mounted_as_a_directory(renders, name):
    r = renders[name]
    fwd = r.container(FORWARDER)
    (mount,) = [m for m in fwd["volumeMounts"] if m["name"] == "keystone"]
    assert "subPath" not in mount and "subPathExpr" not in mount, "subPath never sees a rotated Secret"
    assert mount["mountPath"] == "/etc/blueflood-forward/keystone"
    assert mount.get("readOnly") is True
    (vol,) = [v for v in r.pod["volumes"] if v["name"] == "keystone"]
    assert vol["secret"]["secretName"] == "blueflood-forward-keystone"
    assert "items" not in vol["secret"], "items would pin keys; the whole Secret is mounted"
    cfg = r.config
    assert cfg["user_file"] == "/etc/blueflood-forward/keystone/username"
    assert cfg["key_file"] == "/etc/blueflood-forward/keystone/apiKey"
    assert "key" not in cfg and "user" not in cfg
    # rax-kskey is the forwarder's default method: not written, so the original's
    # -u/--key-file behaviour needs no newer option.
    assert "auth_method" not in cfg
    assert cfg["auth_url"] == "https://identity.api.rackspacecloud.com/v2.0/tokens"
    # The Secret's content is not in the pod template: rotation must not roll the pods.
    assert not any("checksum/secret" in k for k in r.deployment["spec"]["template"]["metadata"]["annotations"])


def test_no_volume_anywhere_uses_subpath_for_a_secret(each):
    _, r = each
    secret_volumes = {v["name"] for v in r.pod["volumes"] if "secret" in v}
    for c in r.pod["containers"]:
        for m in c.get("volumeMounts", []):
            if m["name"] in secret_volumes:
                assert "subPath" not in m, (c["name"], m)


def test_no_auth_by_default(renders):
    for name in ("sidecar-default", "standalone-default"):
        r = renders[name]
        assert "keystone" not in {v["name"] for v in r.pod["volumes"]}
        assert not r.all("Secret")
        assert not {"user_file", "key_file", "secret_name", "auth_method"} & set(r.config)


def test_chart_created_secret_is_for_testing_and_api_source(renders):
    r = renders["all-options"]
    secret = r.one("Secret")
    assert set(secret["data"]) == {"user", "password"}
    cfg = r.config
    assert cfg["secret_name"] == secret["metadata"]["name"]
    assert cfg["auth_method"] == "v3-password" and cfg["auth_domain"] == "Example"
    assert cfg["secret_user_key"] == "user" and cfg["secret_key_key"] == "password"
    # API source: nothing mounted, the token is mounted for the API client.
    assert "keystone" not in {v["name"] for v in r.pod["volumes"]}
    assert r.pod["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in r.container(FORWARDER)["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_auth_needs_a_secret():
    err = render(sets=("auth.enabled=true",), expect_ok=False)
    assert "auth.existingSecret" in err


# ---------------------------------------------------------------- RBAC


def test_rbac_role_names_only_the_one_secret(renders):
    r = renders["all-options"]
    role = r.one("Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [r.one("Secret")["metadata"]["name"]],
            "verbs": ["get", "watch"],
        }
    ]
    binding = r.one("RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    sa = r.one("ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "graphite"}]
    assert r.pod["serviceAccountName"] == sa["metadata"]["name"]
    assert not r.all("ClusterRole") and not r.all("ClusterRoleBinding")


def test_rbac_off_by_default(each):
    name, r = each
    if name == "all-options":
        return
    assert not r.all("Role") and not r.all("RoleBinding")
    assert r.pod["automountServiceAccountToken"] is False
    assert r.one("ServiceAccount")["automountServiceAccountToken"] is False


def test_api_source_without_rbac_is_refused():
    err = render(
        sets=("auth.enabled=true", "auth.existingSecret=s", "auth.source=kubernetes-api"), expect_ok=False
    )
    assert "rbac.create" in err


# ---------------------------------------------------------------- probes and ports


def test_probes_use_the_admin_endpoints(each):
    _, r = each
    fwd = r.container(FORWARDER)
    admin = port_of(fwd, "admin")
    assert r.config["admin_addr"] == f"0.0.0.0:{admin}"
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/livez")):
        get = fwd[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ("admin", admin), probe
    svc = r.one("Service")
    (svc_admin,) = [p for p in svc["spec"]["ports"] if p["name"] == "admin"]
    assert svc_admin["targetPort"] == "admin"


def test_default_ports(renders):
    fwd = renders["standalone"].container(FORWARDER)
    assert port_of(fwd, "pickle") == 2004
    assert port_of(fwd, "line") == 2003
    assert port_of(fwd, "admin") == 8080
    udp = [p for p in fwd["ports"] if p["name"] == "line-udp"][0]
    assert udp == {"name": "line-udp", "containerPort": 2003, "protocol": "UDP"}
    cfg = renders["standalone"].config
    assert cfg["endpoint"] == "tcp:2004"
    assert cfg["line_endpoint"] == "tcp:2003"
    assert cfg["udp_endpoint"] == "udp:2003"


# ---------------------------------------------------------------- sidecar wiring


@pytest.mark.parametrize("name", ["sidecar-default", "sidecar"])
def test_carbon_relay_sends_pickle_to_the_forwarder(renders, name):
    r = renders[name]
    assert [c["name"] for c in r.pod["containers"]] == [RELAY, FORWARDER]
    relay_cm = r.one("ConfigMap", "-relay")["data"]
    conf = relay_cm["carbon.conf"]
    assert re.search(r"^\[relay\]$", conf, re.M)
    assert re.search(r"^DESTINATIONS = 127\.0\.0\.1:2004$", conf, re.M)
    assert re.search(r"^DESTINATION_PROTOCOL = pickle$", conf, re.M)
    assert re.search(r"^destinations = 127\.0\.0\.1:2004$", relay_cm["relay-rules.conf"], re.M)
    assert "storage-schemas.conf" in relay_cm
    # The forwarder listens for pickle on that port, on loopback only.
    assert r.config["endpoint"] == "tcp:2004:interface=127.0.0.1"
    fwd = r.container(FORWARDER)
    assert port_of(fwd, "pickle") == 2004
    # The relay's own ports do not collide with the forwarder's (one network namespace).
    relay = r.container(RELAY)
    relay_ports = {p["containerPort"] for p in relay["ports"]}
    assert relay_ports.isdisjoint({p["containerPort"] for p in fwd["ports"]})
    mounts = {m["name"]: m for m in relay["volumeMounts"]}
    assert mounts["relay-config"]["mountPath"] == "/etc/carbon"
    assert "--config=/etc/carbon/carbon.conf" in relay["command"]
    # The Service exposes carbon-relay's ports to the cluster as 2003/2004.
    ports = {p["name"]: p for p in r.one("Service")["spec"]["ports"]}
    assert ports["carbon-line"]["port"] == 2003 and ports["carbon-line"]["targetPort"] == "relay-line"
    assert ports["carbon-pickle"]["port"] == 2004 and ports["carbon-pickle"]["targetPort"] == "relay-pickle"
    # The relay flushes before the forwarder stops listening: the forwarder's own
    # shutdown_delay (no preStop hook: none works on 1.20 with a distroless image).
    assert r.config["shutdown_delay"] > 0
    assert "lifecycle" not in fwd


@pytest.mark.parametrize("name", ["standalone-default", "standalone"])
def test_standalone_is_the_forwarder_alone(renders, name):
    r = renders[name]
    assert [c["name"] for c in r.pod["containers"]] == [FORWARDER]
    assert not [cm for cm in r.all("ConfigMap") if cm["metadata"]["name"].endswith("-relay")]
    assert r.config["endpoint"] == "tcp:2004"
    ports = {p["name"]: p for p in r.one("Service")["spec"]["ports"]}
    assert ports["carbon-pickle"]["targetPort"] == "pickle"
    assert "lifecycle" not in r.container(FORWARDER)
    assert r.config["shutdown_delay"] == 0


def test_sidecar_port_collisions_are_refused():
    err = render(sets=("relay.picklePort=2004",), expect_ok=False)
    assert "share the pod's network" in err


# ---------------------------------------------------------------- pod hardening


def assert_restricted(ctx, where):
    assert ctx["runAsNonRoot"] is True, where
    assert ctx["readOnlyRootFilesystem"] is True, where
    assert ctx["allowPrivilegeEscalation"] is False, where
    assert ctx["capabilities"]["drop"] == ["ALL"], where
    assert "add" not in ctx["capabilities"], where
    assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
    assert ctx.get("privileged", False) is False, where
    assert ctx["runAsUser"] != 0, where


def test_security_context(each):
    name, r = each
    pod_ctx = r.pod["securityContext"]
    assert pod_ctx["runAsNonRoot"] is True
    assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault"
    for c in r.pod["containers"]:
        assert_restricted(c["securityContext"], f"{name}/{c['name']}")
    assert not r.pod.get("hostNetwork") and not r.pod.get("hostPID") and not r.pod.get("hostIPC")


def test_writable_paths_are_volumes(each):
    _, r = each
    volumes = {v["name"]: v for v in r.pod["volumes"]}
    for c in r.pod["containers"]:
        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], c["name"]
        assert volumes[tmp[0]["name"]]["emptyDir"]["sizeLimit"]
    if RELAY in [c["name"] for c in r.pod["containers"]]:
        assert volumes["relay-state"]["emptyDir"]["sizeLimit"]
    spool = [m for m in r.container(FORWARDER)["volumeMounts"] if m["name"] == "spool"]
    if spool:
        assert not spool[0].get("readOnly")
        vol = volumes["spool"]
        assert ("emptyDir" in vol and vol["emptyDir"]["sizeLimit"]) or vol["persistentVolumeClaim"]["claimName"]


def test_resources_have_requests_and_limits(each):
    _, r = each
    for c in r.pod["containers"]:
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)


def test_images(renders):
    assert renders["sidecar-default"].container(FORWARDER)["image"] == "ghcr.io/blueflood-forward/blueflood-forward:0.1.0"
    img = renders["all-options"].container(FORWARDER)["image"]
    assert img == "registry.example.com/mirror/blueflood-forward@sha256:" + "0123456789abcdef" * 4


# ---------------------------------------------------------------- shutdown


def test_grace_period_exceeds_shutdown_timeout(each):
    _, r = each
    cfg = r.config
    assert "lifecycle" not in r.container(FORWARDER)
    # shutdown_timeout counts from the end of shutdown_delay: the grace period needs both.
    assert r.pod["terminationGracePeriodSeconds"] > cfg["shutdown_timeout"] + cfg["shutdown_delay"]


@pytest.mark.parametrize("seconds", [0, 7])
def test_pre_stop_sleep_is_the_forwarders_shutdown_delay(seconds):
    r = render(sets=(f"forwarder.preStopSleepSeconds={seconds}", "forwarder.shutdownTimeout=20"))
    assert r.config["shutdown_delay"] == seconds
    assert "lifecycle" not in r.container(FORWARDER)
    assert r.pod["terminationGracePeriodSeconds"] == seconds + 20 + 10
    # Standalone: no carbon-relay beside it to wait for.
    standalone = render(sets=("mode=standalone", f"forwarder.preStopSleepSeconds={seconds}"))
    assert standalone.config["shutdown_delay"] == 0


def test_shutdown_delay_is_set_by_the_chart():
    err = render(sets=("forwarder.config.shutdown_delay=3",), expect_ok=False)
    assert "forwarder.config.shutdown_delay: this key is set by the chart" in err


def test_short_grace_period_is_refused():
    err = render(sets=("terminationGracePeriodSeconds=25",), expect_ok=False)
    assert "must be greater than forwarder.shutdownTimeout" in err


# ---------------------------------------------------------------- configuration


def test_checksum_follows_the_config():
    a = render(sets=("forwarder.tenant=a",)).deployment["spec"]["template"]["metadata"]["annotations"]
    b = render(sets=("forwarder.tenant=b",)).deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
    c = render(sets=("auth.enabled=true", "auth.createSecret=true", "auth.username=u", "auth.apiKey=k1"))
    d = render(sets=("auth.enabled=true", "auth.createSecret=true", "auth.username=u", "auth.apiKey=k2"))
    ca = c.deployment["spec"]["template"]["metadata"]["annotations"]
    da = d.deployment["spec"]["template"]["metadata"]["annotations"]
    assert ca == da, "a new key must not roll the pods"


def test_config_is_passed_with_config_flag(each):
    _, r = each
    fwd = r.container(FORWARDER)
    assert fwd["args"][:2] == ["--config", "/etc/blueflood-forward/config.toml"]
    (m,) = [m for m in fwd["volumeMounts"] if m["name"] == "forwarder-config"]
    assert m["mountPath"] == "/etc/blueflood-forward/config.toml"


def test_extra_config_keys_are_rendered(renders):
    cfg = renders["all-options"].config
    assert cfg["buffer_bytes"] == "128MiB"
    assert cfg["concurrency"] == 8 and isinstance(cfg["concurrency"], int)
    assert cfg["retry_initial"] == 0.5
    assert cfg["overwrite_collection_timestamp"] is False


def test_managed_keys_cannot_be_overridden():
    err = render(sets=("forwarder.config.endpoint=tcp:1",), expect_ok=False)
    assert "set by the chart" in err


def test_schema_is_enforced():
    assert "value must be one of" in render(sets=("mode=daemonset",), expect_ok=False)
    assert "additional properties 'BadKey' not allowed" in render(sets=("forwarder.config.BadKey=1",), expect_ok=False)
    assert "additional properties" in render(sets=("spool.bogus=1",), expect_ok=False).lower()
    assert "value must be one of" in render(sets=("spool.fullPolicy=drop_newest",), expect_ok=False)
    assert "/spool/size" in render(sets=("spool.size=1GB",), expect_ok=False)
    assert "/spool/fsync" in render(sets=("spool.fsync=never",), expect_ok=False)
    assert "/spool/threshold" in render(sets=("spool.threshold=1.5",), expect_ok=False)


def test_rendered_config_is_accepted_by_the_binary(each, tmp_path):
    """`blueflood-forward check --no-send` loads each rendered config.toml as a pod would."""
    name, r = each
    assert_binary_accepts(r, tmp_path, name)


def test_config_keys_are_known_to_the_binary(renders):
    """Every key the chart writes must be a real option (an unknown key makes the binary exit 64)."""
    binary = os.environ.get("BLUEFLOOD_FORWARD_BIN")
    if not binary:
        pytest.skip("BLUEFLOOD_FORWARD_BIN not set")
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r"--([a-z][a-z0-9-]*)", help_text))
    unknown = {}
    for name, r in renders.items():
        for key in r.config:
            if key.replace("_", "-") not in flags:
                unknown.setdefault(key, []).append(name)
    assert not unknown, f"config keys the binary does not know (yet): {unknown}"


# ---------------------------------------------------------------- optional resources


def test_optional_resources_off_by_default(renders):
    for name in ("sidecar-default", "standalone-default", "sidecar", "standalone"):
        kinds = set(renders[name].kinds())
        assert not kinds & {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy", "Role", "RoleBinding"}, name


def test_service_monitor(renders):
    sm = renders["all-options"].one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "admin" and ep["path"] == "/metrics"
    assert sm["spec"]["selector"]["matchLabels"] == renders["all-options"].deployment["spec"]["selector"]["matchLabels"]


def test_prometheus_rule(renders):
    # The alerts themselves are tested by promtool (tests/it/real_prometheus/rules.rs); here the
    # object around them and the values set in ci/all-options-values.yaml.
    r = renders["all-options"]
    pr = r.one("PrometheusRule")
    assert pr["apiVersion"] == "monitoring.coreos.com/v1"
    assert pr["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = pr["spec"]["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {
        "BluefloodForwardDown", "BluefloodForwardAbsent", "BluefloodForwardNotReady",
        "BluefloodForwardDatapointsDropped", "BluefloodForwardDeliveryLag",
        "BluefloodForwardSpoolFilling", "BluefloodForwardAuthFailing",
        "BluefloodForwardCredentialsReloadFailing",
    }
    assert all(rule["labels"]["team"] == "metrics" for rule in alerts.values())
    dropped = alerts["BluefloodForwardDatapointsDropped"]
    assert dropped["for"] == "5m" and dropped["expr"].endswith("[15m])) > 10"), dropped
    assert 'reason!~"out_of_window"' in dropped["expr"], dropped
    # The selector follows the release: the ServiceMonitor's job is the Service's name.
    service = r.one("Service")["metadata"]["name"]
    assert f'namespace="graphite", job="{service}"' in alerts["BluefloodForwardDown"]["expr"]


def test_autoscaling(renders):
    r = renders["autoscaling"]
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": r.deployment["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    metrics = {m.get("resource", m.get("pods", {}).get("metric", {})).get("name"): m for m in hpa["spec"]["metrics"]}
    assert metrics["cpu"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert metrics["memory"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    assert metrics["blueflood_forward_pending_datapoints"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "50k"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    # The HPA owns the replica count: a `replicas` in the Deployment would fight it on upgrade.
    assert "replicas" not in r.deployment["spec"]
    for name in RENDERS:
        if name != "autoscaling":
            assert not renders[name].all("HorizontalPodAutoscaler"), name
            assert "replicas" in renders[name].deployment["spec"], name


@pytest.mark.parametrize(
    "sets, says",
    [
        (("autoscaling.enabled=true",), "needs mode: standalone"),
        (("mode=standalone", "autoscaling.enabled=true", "spool.persistence.enabled=true", "podSecurityContext.fsGroup=65532"), "cannot be used with spool.persistence.enabled"),
        (("mode=standalone", "autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"), "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (3)"),
        (("mode=standalone", "autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=0"), "needs something to scale on"),
        (("mode=standalone", "autoscaling.enabled=true", "forwarder.resources.requests.cpu=null"), "needs forwarder.resources.requests.cpu"),
        (("mode=standalone", "autoscaling.enabled=true", "autoscaling.targetMemoryUtilizationPercentage=80", "forwarder.resources.requests.memory=null"), "needs forwarder.resources.requests.memory"),
    ],
)
def test_autoscaling_refuses(sets, says):
    err = render(sets=sets, expect_ok=False)
    assert says in err, err


def test_pdb(renders):
    r = renders["all-options"]
    pdb = r.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == r.deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    "flags, api_version",
    [
        # What a 1.20 cluster serves (policy/v1 PodDisruptionBudget came in 1.21), with and
        # without the list helm would discover.
        (("--kube-version", "1.20.2"), "policy/v1beta1"),
        (("--kube-version", "1.20.2", "--api-versions", "policy/v1beta1/PodDisruptionBudget"), "policy/v1beta1"),
        (("--kube-version", "1.21.0"), "policy/v1"),
        (("--kube-version", "1.30.0", "--api-versions", "policy/v1/PodDisruptionBudget"), "policy/v1"),
        ((), "policy/v1"),
    ],
)
def test_pdb_api_version_follows_the_cluster(flags, api_version):
    r = render(sets=("podDisruptionBudget.enabled=true",), flags=flags)
    assert r.one("PodDisruptionBudget")["apiVersion"] == api_version


def test_network_policy_carbon_from_cluster_admin_from_monitoring():
    r = render(sets=("networkPolicy.enabled=true",))
    np = r.one("NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    carbon, admin = np["spec"]["ingress"]
    assert carbon["from"] == [{"namespaceSelector": {}}]
    assert {p["port"] for p in carbon["ports"]} == {2013, 2014}  # the relay's ports in sidecar mode
    assert admin["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert admin["ports"] == [{"port": 8080, "protocol": "TCP"}]
    s = render(sets=("networkPolicy.enabled=true", "mode=standalone", "forwarder.line.enabled=true"))
    carbon, _ = s.one("NetworkPolicy")["spec"]["ingress"]
    assert {p["port"] for p in carbon["ports"]} == {2003, 2004}


def test_labels_and_selectors(each):
    _, r = each
    sel = r.deployment["spec"]["selector"]["matchLabels"]
    assert r.deployment["spec"]["template"]["metadata"]["labels"].items() >= sel.items()
    assert r.one("Service")["spec"]["selector"] == sel
    for d in r.docs:
        assert d["metadata"]["namespace"] == "graphite", d["metadata"]["name"]


# ---------------------------------------------------------------- admin token


def admin_volume(r):
    return [v for v in r.pod["volumes"] if v["name"] == "admin-token"]


def admin_mounts(r):
    return [m for c in r.pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == "admin-token"]


def test_no_admin_token_by_default(each):
    name, r = each
    if name in ("admin-token", "all-options"):
        return
    assert not admin_volume(r) and not admin_mounts(r), name
    assert not any(k.startswith("admin_token") for k in r.config), name
    for sm in r.all("ServiceMonitor"):
        for ep in sm["spec"]["endpoints"]:
            assert "authorization" not in ep and "bearerTokenSecret" not in ep, name


def test_no_admin_token_service_monitor_has_no_authorization():
    sm = render(sets=("metrics.serviceMonitor.enabled=true",)).one("ServiceMonitor")
    (ep,) = sm["spec"]["endpoints"]
    assert "authorization" not in ep and "bearerTokenSecret" not in ep


@pytest.mark.parametrize(
    "name, secret, key",
    [("admin-token", "blueflood-forward-admin", "token"), ("all-options", "graphite-blueflood-admin", "bearer-token")],
)
def test_admin_token_is_mounted_and_configured(renders, name, secret, key):
    r = renders[name]
    (vol,) = admin_volume(r)
    assert vol["secret"]["secretName"] == secret
    assert "items" not in vol["secret"], "the whole Secret is mounted"
    # Mounted into the forwarder only, read-only, as a directory.
    fwd = r.container(FORWARDER)
    (mount,) = [m for m in fwd["volumeMounts"] if m["name"] == "admin-token"]
    assert mount == {"name": "admin-token", "mountPath": ADMIN_TOKEN_DIR, "readOnly": True}
    assert len(admin_mounts(r)) == 1, "only the forwarder reads the token"
    cfg = r.config
    assert cfg["admin_token_file"] == f"{ADMIN_TOKEN_DIR}/{key}"
    assert "admin_token" not in cfg
    (ep,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert ep["authorization"] == {"type": "Bearer", "credentials": {"name": secret, "key": key}}
    assert ep["port"] == "admin" and ep["path"] == "/metrics"
    # The probes need no token.
    assert fwd["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert fwd["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_admin_token_in_sidecar_and_standalone_modes():
    for mode in ("sidecar", "standalone"):
        r = render(sets=(f"mode={mode}", "admin.token.existingSecret=admin"))
        assert {c["name"] for c in r.pod["containers"]} == ({FORWARDER, RELAY} if mode == "sidecar" else {FORWARDER})
        (vol,) = admin_volume(r)
        assert vol["secret"]["secretName"] == "admin"
        (mount,) = admin_mounts(r)
        assert mount["readOnly"] is True and "subPath" not in mount
        assert r.config["admin_token_file"] == f"{ADMIN_TOKEN_DIR}/token"
        assert not r.all("ServiceMonitor")


def test_admin_token_numeric_names_stay_strings(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text('admin: {token: {existingSecret: "123", secretKey: "456"}}\nmetrics: {serviceMonitor: {enabled: true}}\n')
    r = render(str(values))
    (vol,) = admin_volume(r)
    assert vol["secret"]["secretName"] == "123"
    (ep,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    assert ep["authorization"]["credentials"] == {"name": "123", "key": "456"}
    assert r.config["admin_token_file"] == f"{ADMIN_TOKEN_DIR}/456"


def test_admin_token_change_rolls_the_pods():
    a = render(sets=("admin.token.existingSecret=admin",)).deployment["spec"]["template"]["metadata"]["annotations"]
    b = render().deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"], "the token is read at start: enabling it must roll the pods"


@pytest.mark.parametrize(
    "sets",
    [
        ("forwarder.config.admin_token_file=/x",),
        ("forwarder.extraEnv[0].name=BLUEFLOOD_FORWARD_ADMIN_TOKEN_FILE", "forwarder.extraEnv[0].value=/x"),
        ("forwarder.extraArgs[0]=--admin-token-file=/x",),
    ],
)
def test_admin_token_is_set_in_one_place(sets):
    err = render(sets=("admin.token.existingSecret=admin",) + sets, expect_ok=False)
    assert "set it with admin.token.* only" in err
    # Without the chart's token the same settings pass, unless a ServiceMonitor would scrape
    # /metrics without the token.
    render(sets=sets)
    err = render(sets=("metrics.serviceMonitor.enabled=true",) + sets, expect_ok=False)
    assert "admin.token.existingSecret" in err and "ServiceMonitor" in err


def test_admin_token_mount_path_is_its_own():
    err = render(
        sets=(
            "admin.token.existingSecret=admin",
            "auth.enabled=true",
            "auth.existingSecret=k",
            f"auth.mountPath={ADMIN_TOKEN_DIR}",
        ),
        expect_ok=False,
    )
    assert "auth.mountPath must differ" in err


def test_admin_token_schema():
    assert "/admin/token/existingSecret" in render(sets=("admin.token.existingSecret=Not_A_Name",), expect_ok=False)
    assert "/admin/token/secretKey" in render(sets=("admin.token.existingSecret=a", "admin.token.secretKey=a/b"), expect_ok=False)
    assert "additional properties" in render(sets=("admin.token.create=true",), expect_ok=False).lower()


# ---------------------------------------------------------------- disk spool

SPOOL_KEYS = {"spool_dir", "spool_bytes", "spool_full_policy", "spool_fsync", "spool_threshold", "spool_drain_rate"}
MIB = 1 << 20
GIB = 1 << 30


def spool_volume(r):
    (vol,) = [v for v in r.pod["volumes"] if v["name"] == "spool"]
    return vol


def spool_mount(r):
    (m,) = [m for m in r.container(FORWARDER)["volumeMounts"] if m["name"] == "spool"]
    return m


@pytest.mark.parametrize("name", ["sidecar-default", "standalone-default", "sidecar", "standalone"])
def test_spool_is_on_by_default_on_an_emptydir(renders, name):
    r = renders[name]
    cfg = r.config
    assert {k: cfg[k] for k in SPOOL_KEYS} == {
        "spool_dir": "/var/spool/blueflood-forward",
        "spool_bytes": GIB * 9 // 10,  # 90% of the volume: the kubelet evicts past sizeLimit
        "spool_full_policy": "drop_oldest",
        "spool_fsync": 1000,
        "spool_threshold": 0.5,
        "spool_drain_rate": 50000,
    }
    assert spool_mount(r)["mountPath"] == cfg["spool_dir"]
    assert spool_volume(r) == {"name": "spool", "emptyDir": {"sizeLimit": "1Gi"}}
    assert not r.all("PersistentVolumeClaim")
    # Only the forwarder writes the spool; the root filesystem stays read-only.
    if RELAY in [c["name"] for c in r.pod["containers"]]:
        assert "spool" not in {m["name"] for m in r.container(RELAY)["volumeMounts"]}
    assert r.container(FORWARDER)["securityContext"]["readOnlyRootFilesystem"] is True
    assert r.pod["securityContext"]["fsGroup"] == 65532
    assert r.deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_spool_off(renders):
    r = renders["spool-off"]
    assert not SPOOL_KEYS & set(r.config)
    assert "spool" not in {v["name"] for v in r.pod["volumes"]}
    assert "spool" not in {m["name"] for m in r.container(FORWARDER)["volumeMounts"]}
    assert not r.all("PersistentVolumeClaim")


def test_spool_on_a_chart_created_pvc(renders):
    r = renders["spool-pvc"]
    pvc = r.one("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "bf-blueflood-forward-spool"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "standard",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    assert spool_volume(r) == {"name": "spool", "persistentVolumeClaim": {"claimName": "bf-blueflood-forward-spool"}}
    cfg = r.config
    assert cfg["spool_bytes"] == 4500 * MIB and cfg["spool_fsync"] == 500
    assert spool_mount(r)["mountPath"] == cfg["spool_dir"] == "/var/spool/blueflood-forward"
    # One claim, one lock: one pod, and the old one goes before the new one starts.
    assert r.deployment["spec"]["replicas"] == 1
    assert r.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert r.pod["securityContext"]["fsGroup"]


def test_spool_on_an_existing_claim(renders):
    r = renders["spool-existing-claim"]
    assert not r.all("PersistentVolumeClaim")
    assert spool_volume(r) == {"name": "spool", "persistentVolumeClaim": {"claimName": "blueflood-forward-spool"}}
    assert r.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in r.pod["containers"]] == [FORWARDER]
    assert r.config["spool_dir"] == spool_mount(r)["mountPath"]


def test_spool_every_option(renders):
    r = renders["all-options"]
    cfg = r.config
    assert {k: cfg[k] for k in SPOOL_KEYS} == {
        "spool_dir": "/var/lib/blueflood-forward/spool",
        "spool_bytes": 1800 * MIB,
        "spool_full_policy": "block",
        "spool_fsync": "batch",
        "spool_threshold": 0.75,
        "spool_drain_rate": 20000,
    }
    assert spool_mount(r)["mountPath"] == "/var/lib/blueflood-forward/spool"
    assert spool_volume(r)["emptyDir"] == {"sizeLimit": "2Gi"}
    # Three replicas: an emptyDir each, and the chart's update strategy is kept.
    assert r.deployment["spec"]["replicas"] == 3
    assert r.deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}


@pytest.mark.parametrize(
    "sets, expected",
    [
        (("spool.bytes=943718400",), 943718400),
        (("spool.bytes=500M",), 500_000_000),
        (("spool.size=10Gi",), 10 * GIB * 9 // 10),
        (("spool.size=2G", "spool.bytes=2G"), 2_000_000_000),
    ],
)
def test_spool_bytes(sets, expected):
    assert render(sets=sets).config["spool_bytes"] == expected


def test_spool_bytes_must_fit_the_volume():
    err = render(sets=("spool.bytes=2Gi",), expect_ok=False)
    assert "must not exceed spool.size" in err and "evicts" in err
    err = render(sets=("spool.size=3Mi",), expect_ok=False)
    assert "minimum spool of 4 MiB" in err
    # Off: nothing to check.
    render(sets=("spool.enabled=false", "spool.bytes=2Gi"))


@pytest.mark.parametrize("claim", [(), ("spool.persistence.existingClaim=mine",)])
def test_spool_pvc_needs_one_replica(claim):
    err = render(sets=("spool.persistence.enabled=true", "replicaCount=2") + claim, expect_ok=False)
    assert "needs replicaCount: 1" in err
    render(sets=("spool.persistence.enabled=true", "replicaCount=1") + claim)
    # An emptyDir per pod: any number of replicas.
    assert render(sets=("replicaCount=4",)).deployment["spec"]["replicas"] == 4


def test_spool_pvc_needs_fs_group():
    err = render(sets=("spool.persistence.enabled=true", "podSecurityContext.fsGroup=null"), expect_ok=False)
    assert "podSecurityContext.fsGroup" in err


def test_spool_pvc_storage_class():
    r = render(sets=("spool.persistence.enabled=true",))
    assert "storageClassName" not in r.one("PersistentVolumeClaim")["spec"]  # the cluster's default
    r = render(sets=("spool.persistence.enabled=true", "spool.persistence.storageClass=-"))
    assert r.one("PersistentVolumeClaim")["spec"]["storageClassName"] == ""


@pytest.mark.parametrize("path", ["/tmp", "/etc/blueflood-forward", "/etc/blueflood-forward/spool", "/"])
def test_spool_mount_path_must_be_its_own(path):
    assert "spool.mountPath" in render(sets=(f"spool.mountPath={path}",), expect_ok=False)


def test_spool_keys_are_set_by_the_chart_only():
    # Values of the right type: the schema lets them through, the chart refuses them.
    valid = {"spool_dir": "/x", "spool_bytes": "1GiB", "spool_full_policy": "block", "spool_fsync": "1", "spool_threshold": "1", "spool_drain_rate": "1"}
    for key in SPOOL_KEYS:
        err = render(sets=(f"forwarder.config.{key}={valid[key]}",), expect_ok=False)
        assert "set by the chart" in err, key


def test_spool_settings_roll_the_pods():
    a = render().deployment["spec"]["template"]["metadata"]["annotations"]
    b = render(sets=("spool.threshold=0.8",)).deployment["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
    # --set makes 0.8 a string: the forwarder reads either
    assert render(sets=("spool.threshold=0.8",)).config["spool_threshold"] in (0.8, "0.8")
