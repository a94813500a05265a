#!/usr/bin/env bash
# A real kube-apiserver (and etcd) for tests/it/real_kube: installs Debian's etcd-server, and
# builds kube-apiserver 1.20.2 from Debian's `kubernetes` source package once, caching the binary
# outside the clone (no Debian or registry package ships the server binary). The same build makes
# kube-controller-manager, kube-scheduler and kubelet (scripts/check-cluster.sh's single-node
# cluster) and the pause image's static binary, from the same source tree.
#
#   bash scripts/kube-apiserver.sh          # build or reuse; prints the env lines for the tests
#   bash scripts/kube-apiserver.sh --env F  # same, and writes those lines to file F
#
# The source comes through a private apt sources list under a temporary directory, so the
# system's apt configuration is left as it is. Plain `go build` fails (the generated code must be
# made first), so the build is `make WHAT=cmd/kube-apiserver`. The vendored reflect2 1.0.1
# segfaults under Go >= 1.18; Debian's golang-github-modern-go-reflect2-dev 1.0.2 replaces it.
# Cache: ${BFF_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blueflood-forward}/kube-apiserver-1.20.2-<recipe hash>/
# Build tree (~2 GB) under ${TMPDIR:-/tmp}, deleted afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

K8S_VERSION=1.20.2
GO_PKG=golang-1.19-go
GO=/usr/lib/go-1.19/bin
ENV_OUT=
if [[ ${1:-} == --env ]]; then ENV_OUT=$2; fi

t0=$(date +%s)
apt_install() { # PACKAGE... (only what is missing; apt-get update once, only then)
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "== kube: apt-get install ${missing[*]}" >&2
    if [[ -z ${APT_UPDATED:-} ]]; then
      apt-get update -qq >&2
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

build_apiserver() {
  apt_install "$GO_PKG" golang-github-modern-go-reflect2-dev dpkg-dev make rsync gcc libc6-dev \
    ca-certificates xz-utils
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/bff-kube-build.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
  # deb-src for bookworm and its security updates (where the kubernetes fixes land).
  cat > "$WORK/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
  APT_PRIVATE=(-o Dir::Etc::SourceList="$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$WORK/lists" -o Dir::Cache="$WORK/cache")
  echo "== kube: fetching Debian's kubernetes source (private sources list in $WORK)" >&2
  apt-get "${APT_PRIVATE[@]}" update -qq >&2
  (cd "$WORK" && apt-get "${APT_PRIVATE[@]}" source -qq kubernetes >&2)
  SRC=$(find "$WORK" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  [[ -d $SRC ]] || { echo "kube: no source tree unpacked in $WORK" >&2; exit 1; }
  DEB_VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
  echo "== kube: building kube-apiserver from kubernetes $DEB_VERSION with $GO_PKG" >&2
  R2=/usr/share/gocode/src/github.com/modern-go/reflect2
  VR2=$SRC/vendor/github.com/modern-go/reflect2
  [[ -d $R2 && -d $VR2 ]] || { echo "kube: reflect2 not found at $R2 or $VR2" >&2; exit 1; }
  rm -rf "$VR2"
  cp -r "$R2" "$VR2"
  # The vendored module list must name the version now in vendor/, or `go build -mod=vendor` refuses.
  sed -i 's|^# github.com/modern-go/reflect2 v1.0.1$|# github.com/modern-go/reflect2 v1.0.2|' "$SRC/vendor/modules.txt"
  sed -i 's|github.com/modern-go/reflect2 v1.0.1|github.com/modern-go/reflect2 v1.0.2|' "$SRC/go.mod"
  tb=$(date +%s)
  (
    cd "$SRC"
    export PATH=$GO:$PATH GOPATH=$WORK/gopath GOCACHE=$WORK/gocache GOFLAGS=-mod=vendor \
      GO111MODULE=on GOPROXY=off GOTOOLCHAIN=local
    export KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian-$DEB_VERSION
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet" >&2
  )
  mkdir -p "$CACHE"
  for b in "${BINARIES[@]}"; do
    built=$(find "$SRC/_output" -type f -name "$b" -perm -u+x | head -n1)
    [[ -x $built ]] || { echo "kube: make produced no $b under $SRC/_output" >&2; exit 1; }
    cp "$built" "$CACHE/$b.tmp"
  done
  # The pod sandbox's pause process, static so the image needs nothing else.
  gcc -static -O2 -o "$CACHE/pause.tmp" \
    -DVERSION="\"$K8S_VERSION-debian\"" "$SRC/build/pause/linux/pause.c"
  mv "$CACHE/pause.tmp" "$CACHE/pause"
  for b in "${BINARIES[@]}"; do mv "$CACHE/$b.tmp" "$CACHE/$b"; done
  echo "$DEB_VERSION" > "$CACHE/debian-version"
  # Older recipes' binaries are no longer used.
  find "$CACHE_BASE" -maxdepth 1 -name "kube-apiserver-*" ! -path "$CACHE" -exec rm -rf {} + || true
  rm -rf "$WORK"
  trap - EXIT
  echo "== kube: built $("$BIN" --version) in $(($(date +%s) - tb)) s (cold total $(($(date +%s) - t0)) s)" >&2
}

# Everything that shapes the binary (versions and the build function): a change is a new cache entry.
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
RECIPE=$( (echo "$K8S_VERSION $GO_PKG ${BINARIES[*]}"; declare -f build_apiserver) | sha256sum | cut -c1-12)
CACHE_BASE=${BFF_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blueflood-forward}
CACHE=$CACHE_BASE/kube-apiserver-$K8S_VERSION-$RECIPE
BIN=$CACHE/kube-apiserver

# etcd 3.4 (server and etcdctl): the apiserver's store, and the compaction that makes a watch 410;
# openssl makes the test cluster's certificates.
apt_install etcd-server etcd-client openssl

if [[ -x $BIN && -x $CACHE/kubelet && -x $CACHE/pause ]] && "$BIN" --version >/dev/null 2>&1; then
  echo "== kube: cached $("$BIN" --version) at $BIN (warm, $(($(date +%s) - t0)) s)" >&2
else
  build_apiserver
fi

ETCD=$(command -v etcd)
ETCDCTL=$(command -v etcdctl)
KUBECTL=$(bash "$ROOT/scripts/check-deploy.sh" --print-helm | xargs dirname)/kubectl
HELM=$(bash "$ROOT/scripts/check-deploy.sh" --print-helm)
ENV_LINES="BFF_KUBE_APISERVER=$BIN
BFF_KUBE_BIN_DIR=$CACHE
BFF_ETCD=$ETCD
BFF_ETCDCTL=$ETCDCTL
BFF_KUBECTL=$KUBECTL
BFF_HELM=$HELM"
echo "$ENV_LINES"
if [[ -n $ENV_OUT ]]; then echo "$ENV_LINES" > "$ENV_OUT"; fi
echo "== kube: ready in $(($(date +%s) - t0)) s" >&2
