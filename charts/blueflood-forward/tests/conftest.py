"""Renders the chart with `helm template` and hands the parsed manifests to the tests.

HELM names the helm binary (scripts/check-deploy.sh sets it); BLUEFLOOD_FORWARD_BIN, when set,
names a built forwarder whose --help the rendered configuration keys are checked against.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

CHART = pathlib.Path(__file__).resolve().parents[1]
REPO = CHART.parents[1]
ADMIN_TOKEN_DIR = "/etc/blueflood-forward/admin-token"


def helm_bin():
    helm = os.environ.get("HELM") or shutil.which("helm")
    if not helm:
        pytest.skip("helm not found: set HELM (scripts/check-deploy.sh does)")
    return helm


class Rendered:
    def __init__(self, docs):
        self.docs = [d for d in docs if d]

    def kinds(self):
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name_suffix=""):
        found = [d for d in self.all(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
        return found[0]

    @property
    def deployment(self):
        return self.one("Deployment")

    @property
    def pod(self):
        return self.deployment["spec"]["template"]["spec"]

    def container(self, name):
        (c,) = [c for c in self.pod["containers"] if c["name"] == name]
        return c

    @property
    def config_toml(self):
        return self.one("ConfigMap", "-config")["data"]["config.toml"]

    @property
    def config(self):
        """config.toml as a dict (top-level keys only: that is all the file has)."""
        import tomllib

        return tomllib.loads(self.config_toml)


def render(*values_files, sets=(), release="bf", namespace="graphite", expect_ok=True, flags=()):
    cmd = [helm_bin(), "template", release, str(CHART), "--namespace", namespace, *flags]
    for f in values_files:
        cmd += ["-f", str(CHART / "ci" / f) if "/" not in f else f]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if not expect_ok:
        assert p.returncode != 0, f"helm template should have failed: {' '.join(cmd)}"
        return p.stderr
    assert p.returncode == 0, p.stderr
    return Rendered(list(yaml.safe_load_all(p.stdout)))


# The renders every test may use (the same as RENDERS in scripts/check-deploy.sh): both modes
# with defaults, both CI value files, the spool off, on a chart-created PVC and on an existing
# claim, an admin token with a ServiceMonitor, every option, standalone autoscaling with the alerts.
RENDERS = {
    "sidecar-default": ((), ()),
    "standalone-default": ((), ("mode=standalone",)),
    "sidecar": (("sidecar-values.yaml",), ()),
    "standalone": (("standalone-values.yaml",), ()),
    "spool-off": ((), ("spool.enabled=false",)),
    "spool-pvc": (("spool-pvc-values.yaml",), ()),
    "spool-existing-claim": (
        (),
        (
            "mode=standalone",
            "spool.persistence.enabled=true",
            "spool.persistence.existingClaim=blueflood-forward-spool",
        ),
    ),
    "admin-token": (("admin-token-values.yaml",), ()),
    "all-options": (("all-options-values.yaml",), ()),
    "autoscaling": (("autoscaling-values.yaml",), ()),
}


@pytest.fixture(scope="session")
def renders():
    return {name: render(*files, sets=sets) for name, (files, sets) in RENDERS.items()}


@pytest.fixture(params=sorted(RENDERS))
def each(request, renders):
    return request.param, renders[request.param]


def check_config(r, tmp_path):
    """Runs `blueflood-forward check --no-send` (BLUEFLOOD_FORWARD_BIN) on the rendered config.toml
    of `r` as a pod would load it (exit 64 and a `FAILED config` line when the binary refuses it),
    and returns the completed process. Paths of the pod's volumes point into `tmp_path`;
    Keystone and the Kubernetes API are unreachable on purpose, so later steps may fail: only the
    configuration step (the first line) tells."""
    binary = os.environ.get("BLUEFLOOD_FORWARD_BIN")
    if not binary:
        pytest.skip("BLUEFLOOD_FORWARD_BIN not set")
    text = r.config_toml
    cfg = r.config
    if "spool_dir" in cfg:
        (tmp_path / "spool").mkdir()  # the volume exists in the pod
        text = text.replace(f"spool_dir = {json.dumps(cfg['spool_dir'])}", f"spool_dir = {json.dumps(str(tmp_path / 'spool'))}")
        assert str(tmp_path / "spool") in text
    keystone = tmp_path / "keystone"
    keystone.mkdir()
    (keystone / "username").write_text("user\n")
    (keystone / "apiKey").write_text("key\n")
    text = text.replace('"/etc/blueflood-forward/keystone/', json.dumps(str(keystone) + "/")[:-1])
    if "admin_token_file" in cfg:  # the admin token Secret's directory
        admin = tmp_path / "admin-token"
        admin.mkdir()
        (admin / os.path.basename(cfg["admin_token_file"])).write_text("admin-token\n")
        text = text.replace(f'"{ADMIN_TOKEN_DIR}/', json.dumps(str(admin) + "/")[:-1])
        assert str(admin) in text
    (tmp_path / "config.toml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOOD_FORWARD_", "KUBERNETES_"))}
    env.update(
        BLUEFLOOD_FORWARD_AUTH_URL="http://127.0.0.1:9/v2.0/tokens",  # nothing listens: fails fast
        BLUEFLOOD_FORWARD_SECRET_NAMESPACE="graphite",  # a pod reads it from its service account
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    return subprocess.run(
        [binary, "check", "--no-send", "--config", str(tmp_path / "config.toml")],
        capture_output=True, text=True, env=env, timeout=120,
    )


def assert_binary_accepts(r, tmp_path, what=""):
    p = check_config(r, tmp_path)
    first = (p.stdout.splitlines() or [""])[0]
    assert p.returncode != 64 and first.startswith("ok      config:"), (what, p.returncode, p.stdout, p.stderr)


def values_file(tmp_path, values, name="values.yaml"):
    """`values` written as a values file in `tmp_path`; its path, for render()."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)
