#!/usr/bin/env bash
# A real single-node Kubernetes 1.20.2 on 127.0.0.1, and the chart installed on it the way users
# install it (tests/it/real_cluster): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, and a node (containerd 1.6 + runc from Debian, the kubelet) whose pods use the
# host network. Nothing on the host changes: see scripts/cluster/node.sh.
#
#   bash scripts/check-cluster.sh               # up, run tests/it/real_cluster, down
#   bash scripts/check-cluster.sh --up --env F  # build or reuse, start, wait for the node; write
#                                               # the tests' env lines to F (for .ci/run)
#   bash scripts/check-cluster.sh --down        # stop everything and remove the cluster directory
#
# Binaries: scripts/kube-apiserver.sh (built once from Debian's kubernetes source, cached).
# Images: scripts/cluster/images.sh; the forwarder image is $BFF_IMAGE (built by
# scripts/check-image.sh --build-only when absent). Cluster directory: $BFF_CLUSTER_DIR
# (default /tmp/bff-cluster). Fixed ports, below the ephemeral range the other tests use:
# etcd 12379/12380, apiserver 16443, kubelet 11250 (healthz 11248).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CLUSTER_DIR=${BFF_CLUSTER_DIR:-/tmp/bff-cluster}
CLUSTER_CACHE=${BFF_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blueflood-forward}/cluster-images
APISERVER_PORT=16443
ETCD_PORT=12379
# The kubelet's full resync of pod volumes (its default is 1 min; the mounted Secret's update
# waits for it plus the Secret cache's TTL). Lowered so a rotation shows up within seconds.
SYNC_FREQUENCY=10s
NODE_READY_TIMEOUT=180
t0=$SECONDS

# shellcheck source=scripts/cluster/pki.sh
. "$ROOT/scripts/cluster/pki.sh"
# shellcheck source=scripts/cluster/images.sh
. "$ROOT/scripts/cluster/images.sh"
# shellcheck source=scripts/cluster/control-plane.sh
. "$ROOT/scripts/cluster/control-plane.sh"

say() { echo "== cluster: $* ($((SECONDS - t0)) s)" >&2; }

apt_install() { # PACKAGE...: only what is missing; no service is started (policy-rc.d)
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "apt-get install ${missing[*]}"
  local had_policy=0
  [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  ((had_policy)) || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
  "${apt[@]}" > /dev/null 2>&1 || { apt-get update -qq && "${apt[@]}" > /dev/null; }
  ((had_policy)) || rm -f /usr/sbin/policy-rc.d
}

down() {
  [[ -d $CLUSTER_DIR ]] || return 0
  say "stopping"
  # Containers first (their shims outlive containerd), then the node, then the control plane.
  local sock=$CLUSTER_DIR/node/run/containerd/containerd.sock t
  if [[ -S $sock ]]; then
    for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$t" > /dev/null 2>&1 || true
    done
  fi
  local pidfile
  for pidfile in "$CLUSTER_DIR"/pids/*; do
    [[ -e $pidfile ]] || continue
    kill -- "-$(cat "$pidfile")" 2>/dev/null || kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
  if [[ -s $CLUSTER_DIR/node-mntns ]]; then
    local ns pid
    ns=$(cat "$CLUSTER_DIR/node-mntns")
    for pid in $(pgrep -f containerd-shim-runc-v2 || true); do
      [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$ns" ]] && kill -KILL "$pid" 2>/dev/null
    done
  fi
  for pidfile in "$CLUSTER_DIR"/pids/*; do
    [[ -e $pidfile ]] || continue
    kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
  done
  # The kubelet's pod cgroups (cgroupfs driver), empty once their processes are gone.
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$CLUSTER_DIR"
}

up() { # ENV_FILE
  local env_out=$1
  apt_install containerd runc containernetworking-plugins podman mmdebstrap openssl
  bash "$ROOT/scripts/kube-apiserver.sh" --env "$ROOT/.cache/kube.env" > /dev/null
  set -a
  . "$ROOT/.cache/kube.env"
  set +a
  KUBE_BIN_DIR=$BFF_KUBE_BIN_DIR
  KUBECTL=$BFF_KUBECTL
  if [[ -z ${BFF_IMAGE:-} ]]; then
    [[ -s $ROOT/.cache/image.env ]] || bash "$ROOT/scripts/check-image.sh" --build-only
    set -a
    . "$ROOT/.cache/image.env"
    set +a
  fi
  mkdir -p "$CLUSTER_CACHE"
  say "images"
  local archives=()
  archives+=("$(image_archive_pause)")
  archives+=("$(image_archive_relay)")
  archives+=("$(image_archive_forwarder "$BFF_IMAGE")")

  down
  mkdir -p "$CLUSTER_DIR"/{logs,pids,etcd}
  pki_make "$CLUSTER_DIR/pki"
  say "control plane"
  control_plane_start
  say "node"
  node_start
  images_import "${archives[@]}"
  node_wait_ready
  cat > "$env_out" <<ENV
BFF_CLUSTER_KUBECONFIG=$CLUSTER_DIR/pki/admin.kubeconfig
BFF_CLUSTER_API_PORT=$APISERVER_PORT
BFF_CLUSTER_LOGS=$CLUSTER_DIR/logs
BFF_CLUSTER_FORWARDER_IMAGE=$BFF_IMAGE
BFF_CLUSTER_RELAY_IMAGE=$RELAY_IMAGE
BFF_CLUSTER_SYNC_FREQUENCY=$SYNC_FREQUENCY
BFF_KUBECTL=$KUBECTL
BFF_HELM=$BFF_HELM
ENV
  say "ready (node Ready; env in $env_out)"
}

case ${1:-} in
  --up)
    [[ ${2:-} == --env && -n ${3:-} ]] || { echo "usage: $0 --up --env FILE" >&2; exit 2; }
    up "$3"
    ;;
  --down) down ;;
  "")
    trap down EXIT
    up "$ROOT/.cache/cluster.env"
    set -a
    . "$ROOT/.cache/cluster.env"
    set +a
    CI=true cargo test --locked --test it real_cluster::
    ;;
  *) echo "usage: $0 [--up --env FILE | --down]" >&2; exit 2 ;;
esac
