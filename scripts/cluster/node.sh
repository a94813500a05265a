#!/usr/bin/env bash
# The node: containerd and the kubelet, run by scripts/check-cluster.sh inside their own mount
# namespace (`unshare -m`) so that nothing on the host changes:
# - /run, /var/lib and /var/log are the cluster directory's, bind-mounted over the host's (the
#   kubelet 1.20 writes pod logs to the fixed /var/log/pods, containerd and the kubelet keep state
#   under /run and /var/lib);
# - the kubelet sets vm.overcommit_memory, kernel.panic and kernel.panic_on_oops at start: those
#   /proc/sys files are plain files of ours here, so the host's sysctls stay as they are.
# Mounts made in the namespace are shared inside it (the kubelet's volume mounts must reach
# containerd's containers) and private to it; they vanish with its last process.
#
#   node.sh DIR KUBELET   (DIR: the cluster directory, with containerd.toml and kubelet.yaml)
set -euo pipefail
D=$1
KUBELET=$2

mount --make-rprivate /
for p in run var/lib var/log; do
  mkdir -p "$D/node/$p"
  mount --bind "$D/node/$p" "/$p"
done
mount --make-rshared /
mkdir -p "$D/node/sysctl"
for s in vm/overcommit_memory kernel/panic kernel/panic_on_oops; do
  f=$D/node/sysctl/${s//\//_}
  cat "/proc/sys/$s" > "$f"
  mount --bind "$f" "/proc/sys/$s"
done

containerd --config "$D/containerd.toml" > "$D/logs/containerd.log" 2>&1 &
for _ in $(seq 1 100); do
  [[ -S /run/containerd/containerd.sock ]] && break
  sleep 0.1
done
[[ -S /run/containerd/containerd.sock ]] || { echo "node: containerd did not start (see $D/logs/containerd.log)" >&2; exit 1; }

exec "$KUBELET" --config="$D/kubelet.yaml" --kubeconfig="$D/pki/admin.kubeconfig" \
  --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock \
  --hostname-override=127.0.0.1 --cert-dir="$D/node/kubelet-pki" --v=1 \
  > "$D/logs/kubelet.log" 2>&1
