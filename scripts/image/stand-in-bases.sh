#!/usr/bin/env bash
# Builds the two base images the Dockerfile takes (RUST_IMAGE, RUNTIME_IMAGE) from Debian
# packages, for machines that reach no image registry. Sourced by scripts/check-image.sh, which
# calls `stand_in_bases` and reads BUILDER_BASE and RUNTIME_BASE.
#
# - Runtime: shaped like gcr.io/distroless/cc-debian12:nonroot — glibc, libgcc, the CA bundle,
#   tzdata, netbase, /etc/passwd with root, nobody and nonroot (65532), /tmp, no shell and no
#   other program. Unpacked (not installed) with mmdebstrap's `extract` variant, as distroless
#   does, then trimmed.
# - Builder: Debian minbase with gcc and libc6-dev, plus this machine's own Rust toolchain
#   (rustup and the toolchain `rustc` runs from, without its docs), laid out like the official
#   rust image (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo). It also trusts the
#   CA certificates this machine trusts, because the image build reaches crates.io through
#   this machine's network (which may be behind a TLS-intercepting proxy).
#
# Each image is tagged by what it was built from and reused while that tag exists
# (`BFF_REBUILD_BASES=1` rebuilds them).

SUITE=${BFF_DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${BFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${BFF_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

# sources.list lines, one mmdebstrap argument each
debian_sources=(
  "deb $DEBIAN_MIRROR $SUITE main"
  "deb $DEBIAN_MIRROR $SUITE-updates main"
  "deb $DEBIAN_SECURITY $SUITE-security main"
)

base_wanted() { # IMAGE
  [[ ${BFF_REBUILD_BASES:-} != 1 ]] && podman image exists "$1"
}

make_runtime_base() { # IMAGE
  local image=$1 work root
  work=$(mktemp -d)
  root=$work/root
  echo "== stand-in runtime base $image (mmdebstrap --variant=extract)"
  mmdebstrap --quiet --mode=root --variant=extract \
    --include=libc6,libgcc-s1,ca-certificates,tzdata,netbase,base-files \
    "$SUITE" "$root" "${debian_sources[@]}"
  # The CA bundle update-ca-certificates would write (it is a shell script; nothing runs here).
  mkdir -p "$root/etc/ssl/certs"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt > "$root/etc/ssl/certs/ca-certificates.crt"
  # No shell, no programs: only libraries and data remain. openssl and debconf came in as
  # dependencies of ca-certificates and are not part of distroless cc.
  rm -rf "$root"/bin/* "$root"/sbin/* "$root"/usr/bin/* "$root"/usr/sbin/* \
    "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/usr/lib/x86_64-linux-gnu/libssl* \
    "$root"/usr/lib/x86_64-linux-gnu/libcrypto* "$root"/usr/lib/x86_64-linux-gnu/engines-3 \
    "$root"/usr/lib/x86_64-linux-gnu/ossl-modules "$root"/usr/lib/ssl "$root"/etc/ssl/openssl.cnf \
    "$root"/usr/share/perl5 "$root"/usr/share/debconf "$root"/usr/share/ca-certificates \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian \
    "$root"/var/cache/* "$root"/var/lib/apt "$root"/var/log/*
  cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat > "$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' \
    > "$root/etc/nsswitch.conf"
  install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
  install -d -m 0700 "$root/root"
  install -d -m 1777 "$root/tmp"
  tar --numeric-owner -C "$root" -c . | podman import --quiet \
    --change 'USER=65532:65532' \
    --change 'WORKDIR=/home/nonroot' \
    --change 'ENV=PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    - "$image" > /dev/null
  rm -rf "$work"
}

make_builder_base() { # IMAGE
  local image=$1 work root sysroot toolchain rustup_bin tool
  work=$(mktemp -d)
  root=$work/root
  sysroot=$(rustc --print sysroot)
  toolchain=$(basename "$sysroot")
  rustup_bin=$(command -v rustup)
  echo "== stand-in builder base $image (mmdebstrap minbase + toolchain $toolchain)"
  mmdebstrap --quiet --mode=root --variant=minbase --include=ca-certificates,gcc,libc6-dev \
    "$SUITE" "$root" "${debian_sources[@]}"
  # This machine's trust store, for the build's own downloads (crates.io).
  install -d "$root/usr/local/share/ca-certificates/build-host"
  awk -v dir="$root/usr/local/share/ca-certificates/build-host" \
    '/BEGIN CERTIFICATE/ { n++ } n { print > sprintf("%s/%04d.crt", dir, n) }' \
    /etc/ssl/certs/ca-certificates.crt
  chroot "$root" update-ca-certificates > /dev/null
  install -d "$root/usr/local/rustup/toolchains" "$root/usr/local/cargo/bin"
  tar -C "$(dirname "$sysroot")" --exclude="$toolchain/share/doc" -c "$toolchain" \
    | tar -C "$root/usr/local/rustup/toolchains" -x
  install -m 0755 "$rustup_bin" "$root/usr/local/cargo/bin/rustup"
  for tool in cargo rustc rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
    ln -s rustup "$root/usr/local/cargo/bin/$tool"
  done
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n' \
    "$toolchain" > "$root/usr/local/rustup/settings.toml"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar --numeric-owner -C "$root" -c . | podman import --quiet \
    --change 'ENV=RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV=CARGO_HOME=/usr/local/cargo' \
    --change 'ENV=PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV=RUST_VERSION=$(rustc --version | awk '{print $2}')" \
    - "$image" > /dev/null
  rm -rf "$work"
}

stand_in_bases() {
  local rust_version
  rust_version=$(rustc --version | awk '{print $2}')
  RUNTIME_BASE=localhost/stand-in/distroless-cc-debian12:nonroot
  BUILDER_BASE=localhost/stand-in/rust:$rust_version-$SUITE
  base_wanted "$RUNTIME_BASE" || make_runtime_base "$RUNTIME_BASE"
  base_wanted "$BUILDER_BASE" || make_builder_base "$BUILDER_BASE"
  echo "== bases: RUST_IMAGE=$BUILDER_BASE RUNTIME_IMAGE=$RUNTIME_BASE"
}
