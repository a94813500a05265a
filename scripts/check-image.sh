#!/usr/bin/env bash
# The container image, built from the real Dockerfile and run the way Kubernetes runs it.
#
#   bash scripts/check-image.sh               # build, then run the image test (tests/image_e2e.rs)
#   bash scripts/check-image.sh --build-only  # build only, and write .cache/image.env
#                                             # (BFF_IMAGE, CONTAINERS_CONF) for .ci/run, which
#                                             # runs the image test with the rest of the suite
#
# No image registry is reachable from the build machines, so the two bases the Dockerfile takes
# (RUST_IMAGE, RUNTIME_IMAGE) are stand-ins built from Debian packages (scripts/image/
# stand-in-bases.sh): a builder with this machine's Rust toolchain, and a runtime shaped like
# distroless cc. Everything else is the Dockerfile and .dockerignore as shipped. The build
# fetches crates from crates.io (host network). Prints the image size and fails above 30 MB.
#
# Needs root (rootful podman); installs podman, runc and mmdebstrap from Debian when missing.
# Env: BFF_IMAGE (default localhost/blueflood-forward:check), BFF_REBUILD_BASES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${BFF_IMAGE:-localhost/blueflood-forward:check}
MAX_IMAGE_BYTES=30000000 # 30 MB
BUILD_ONLY=0
case ${1:-} in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

stage() { echo "== image: $* ($(date +%T))"; }

install_tools() {
  local missing=()
  command -v podman > /dev/null || missing+=(podman)
  command -v runc > /dev/null || missing+=(runc)
  command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
  [[ ${#missing[@]} -eq 0 ]] && return
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing ${missing[*]}: install them (Debian packages) or run as root" >&2
    exit 1
  fi
  stage "installing ${missing[*]} (Debian)"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
    "${missing[@]}")
  # A fresh machine may have no package lists yet.
  "${apt[@]}" > /dev/null 2>&1 || { apt-get update -qq && "${apt[@]}" > /dev/null; }
}

# Settings this kind of machine needs, in a containers.conf of our own (the host's is left
# alone): runc, because crun refuses hosts with cgroups v1 and v2 mounted side by side
# ("hybrid"); and explicit ulimits no higher than our own hard limits, because podman's default
# (nofile 1048576) cannot be set without CAP_SYS_RESOURCE. Podman itself lowers its nproc limit
# to 32768 at start, so that is the most a container may ask for.
podman_config() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
  [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
  mkdir -p .cache
  cat > .cache/containers.conf <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$PWD/.cache/containers.conf
}

start=$SECONDS

install_tools
podman_config
podman --version

stage "stand-in base images"
# shellcheck source=scripts/image/stand-in-bases.sh
source scripts/image/stand-in-bases.sh
stand_in_bases

stage "podman build -f Dockerfile (context filtered by .dockerignore)"
build_start=$SECONDS
# --format docker: the OCI format has no SHELL, and the Dockerfile's RUN steps rely on bash's
# pipefail (as with `docker build`).
podman build --pull=never --network=host --layers --format docker \
  --build-arg "RUST_IMAGE=$BUILDER_BASE" \
  --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
  --build-arg "REVISION=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)" \
  -f Dockerfile -t "$IMAGE" .
echo "built $IMAGE in $((SECONDS - build_start)) s"

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(podman image inspect --format '{{.Size}}' "$RUNTIME_BASE")
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
echo "image size: $size bytes ($((size / 1000000)) MB; stand-in runtime base $((base_size / 1000000)) MB, binary layer $(((size - base_size) / 1000000)) MB); user $user"
if [[ $size -gt $MAX_IMAGE_BYTES ]]; then
  echo "the image is larger than $MAX_IMAGE_BYTES bytes" >&2
  exit 1
fi
if [[ $user != 65532:65532 ]]; then
  echo "the image runs as '$user', not 65532:65532" >&2
  exit 1
fi
# Distroless shape: no shell and no program but the forwarder in the runtime image.
files=$(podman image save --format docker-archive "$IMAGE" 2> /dev/null | python3 -c '
import io, json, sys, tarfile
outer = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()))
(manifest,) = json.load(outer.extractfile("manifest.json"))
for layer in manifest["Layers"]:
    for m in tarfile.open(fileobj=outer.extractfile(layer)):
        if m.isfile() or m.issym():
            print(m.name)
')
programs=$(grep -E '(^|/)(s?bin)/' <<< "$files" | grep -vx 'usr/local/bin/blueflood-forward' || true)
if [[ -n $programs ]]; then
  echo "the runtime image holds programs besides the forwarder (distroless has none):" >&2
  echo "$programs" >&2
  exit 1
fi
echo "files in the image: $(wc -l <<< "$files"); programs: usr/local/bin/blueflood-forward only (no shell)"

printf 'BFF_IMAGE=%s\nCONTAINERS_CONF=%s\n' "$IMAGE" "$CONTAINERS_CONF" > .cache/image.env

if [[ $BUILD_ONLY -eq 0 ]]; then
  stage "tests/image_e2e.rs against $IMAGE"
  BFF_IMAGE=$IMAGE CI=${CI:-true} cargo test --locked --test it image_e2e:: -- --nocapture
fi
echo "image check done in $((SECONDS - start)) s"
