# shellcheck shell=bash
# The cluster's images, built from Debian packages and imported into the node's containerd (no
# registry here; the chart runs them with imagePullPolicy: Never). Sourced by
# scripts/check-cluster.sh.
# - pause: the pod sandbox, the static pause binary built from the Kubernetes source tree.
# - carbon-relay: Debian's graphite-carbon (1.1.7), the real carbon-relay the chart's sidecar
#   mode puts beside the forwarder.
# - the forwarder: the image scripts/check-image.sh builds from the real Dockerfile.
# Image archives are cached under $CLUSTER_CACHE (keyed by what shapes them).

PAUSE_IMAGE=localhost/bff-pause:1.20.2
RELAY_IMAGE=localhost/bff-carbon-relay:1.1.7

image_archive_pause() { # -> path of a docker-archive tar
  local out
  out=$CLUSTER_CACHE/pause-$(sha256sum < "$KUBE_BIN_DIR/pause" | cut -c1-12).tar
  if [[ ! -s $out ]]; then
    local work
    work=$(mktemp -d)
    install -D -m 0755 "$KUBE_BIN_DIR/pause" "$work/root/pause"
    tar --numeric-owner -C "$work/root" -c . | podman import --quiet \
      --change 'ENTRYPOINT=["/pause"]' --change 'USER=65535:65535' - "$PAUSE_IMAGE" > /dev/null
    podman save --quiet --format docker-archive -o "$out.tmp" "$PAUSE_IMAGE"
    mv "$out.tmp" "$out"
    rm -rf "$work"
  fi
  echo "$out"
}

image_archive_relay() { # -> path of a docker-archive tar
  local recipe out
  recipe=$(declare -f image_archive_relay | sha256sum | cut -c1-12)
  out=$CLUSTER_CACHE/carbon-relay-$recipe.tar
  if [[ ! -s $out ]]; then
    local work root
    work=$(mktemp -d)
    root=$work/root
    echo "== cluster: carbon-relay image from Debian's graphite-carbon (mmdebstrap)" >&2
    mmdebstrap --quiet --mode=root --variant=minbase --include=graphite-carbon \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      bookworm "$root" "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian-security bookworm-security main" >&2
    # The chart's user (65532) and a writable nothing else: state and /tmp are the pod's volumes.
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >> "$root/etc/passwd"
    echo 'nonroot:x:65532:' >> "$root/etc/group"
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -c . | podman import --quiet \
      --change 'USER=65532:65532' \
      --change 'CMD=["/usr/bin/carbon-relay","--nodaemon","--config=/etc/carbon/carbon.conf","start"]' \
      - "$RELAY_IMAGE" > /dev/null
    podman save --quiet --format docker-archive -o "$out.tmp" "$RELAY_IMAGE"
    mv "$out.tmp" "$out"
    rm -rf "$work"
  fi
  echo "$out"
}

image_archive_forwarder() { # IMAGE -> path of a docker-archive tar
  local image=$1 id out
  id=$(podman image inspect --format '{{.Id}}' "$image" | cut -c1-12)
  out=$CLUSTER_CACHE/forwarder-$id.tar
  if [[ ! -s $out ]]; then
    find "$CLUSTER_CACHE" -maxdepth 1 -name 'forwarder-*.tar' -delete
    podman save --quiet --format docker-archive -o "$out.tmp" "$image"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

images_import() { # ARCHIVE...  (into the node's containerd, namespace k8s.io)
  local a
  for a in "$@"; do
    ctr --address "$CLUSTER_DIR/node/run/containerd/containerd.sock" -n k8s.io images import \
      --all-platforms "$a" > /dev/null
  done
}
