# shellcheck shell=bash
# Starting the cluster's processes (sourced by scripts/check-cluster.sh): etcd and the control
# plane on the host, then the node (scripts/cluster/node.sh in its own mount namespace). Each runs
# in its own session (setsid), its pid in $CLUSTER_DIR/pids, its log in $CLUSTER_DIR/logs.

start_bg() { # NAME COMMAND...
  local name=$1
  shift
  setsid "$@" > "$CLUSTER_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$CLUSTER_DIR/pids/$name"
}

wait_for() { # WHAT SECONDS COMMAND...  (polls every 0.5 s; fails naming the log to read)
  local what=$1 limit=$2 i
  shift 2
  for ((i = 0; i < limit * 2; i++)); do
    "$@" > /dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "cluster: $what not within ${limit} s; logs in $CLUSTER_DIR/logs:" >&2
  tail -n 30 "$CLUSTER_DIR"/logs/*.log >&2 || true
  return 1
}

kc() { "$KUBECTL" --kubeconfig "$CLUSTER_DIR/pki/admin.kubeconfig" --request-timeout=20s "$@"; }

control_plane_start() {
  local p=$CLUSTER_DIR/pki
  start_bg etcd "$BFF_ETCD" --name bff --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "bff=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn --logger zap
  start_bg kube-apiserver "$KUBE_BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" --insecure-port=0 \
    --cert-dir="$CLUSTER_DIR/apiserver-certs" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" --authorization-mode=Node,RBAC --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range=10.96.0.0/24 --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=Hostname \
    --kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
    --allow-privileged=false --profiling=false --v=1
  wait_for "kube-apiserver /readyz" 90 kc get --raw /readyz
  start_bg kube-controller-manager "$KUBE_BIN_DIR/kube-controller-manager" \
    --kubeconfig="$p/admin.kubeconfig" --leader-elect=false \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --use-service-account-credentials=false \
    --bind-address=127.0.0.1 --port=0 --secure-port=0 \
    --flex-volume-plugin-dir="$CLUSTER_DIR/flexvolume" --v=1
  start_bg kube-scheduler "$KUBE_BIN_DIR/kube-scheduler" \
    --kubeconfig="$p/admin.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --port=0 --secure-port=0 --v=1
}

node_start() {
  local d=$CLUSTER_DIR
  mkdir -p "$d/node/opt" "$d/cni"
  cat > "$d/containerd.toml" <<TOML
version = 2
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/node/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE a sandbox may not lower its OOM score below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
TOML
  # Pods use the host network; the kubelet still wants a network plugin configured.
  cat > "$d/cni/10-loopback.conflist" <<'JSON'
{"cniVersion": "0.4.0", "name": "bff-loopback", "plugins": [{"type": "loopback"}]}
JSON
  cat > "$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 11250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 11248
cgroupDriver: cgroupfs
failSwapOn: false
syncFrequency: $SYNC_FREQUENCY
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $CLUSTER_DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
resolvConf: /etc/resolv.conf
# A shared build machine's disk and memory: never evict the test's pods.
evictionHard: {memory.available: "0%", nodefs.available: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  start_bg node unshare -m --propagation private "$ROOT/scripts/cluster/node.sh" "$d" \
    "$KUBE_BIN_DIR/kubelet"
  wait_for "containerd's socket" 30 test -S "$d/node/run/containerd/containerd.sock"
  # The node's mount namespace: scripts/check-cluster.sh --down finds the containers' shims
  # (which outlive containerd) by it.
  readlink "/proc/$(cat "$d/pids/node")/ns/mnt" > "$d/node-mntns"
}

node_ready() {
  [[ $(kc get node 127.0.0.1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

node_wait_ready() {
  wait_for "node 127.0.0.1 Ready" "$NODE_READY_TIMEOUT" node_ready
  # Pods are admitted once the default ServiceAccount exists.
  wait_for "the default ServiceAccount" 60 kc -n default get serviceaccount default
}
