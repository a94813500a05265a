#!/usr/bin/env bash
# A real Prometheus and promtool for tests/it/real_prometheus/: installs Debian's `prometheus`
# package (2.42 on Debian 12; /usr/bin/prometheus and /usr/bin/promtool) when either is missing,
# without letting its service start (nothing here may listen beyond what a test starts and stops
# by pid), prints the versions, then runs the test with the prerequisite required, so a missing
# program fails instead of skipping. Extra arguments go to `cargo test`.
# `--install-only` installs and stops (.ci/run then runs the test with the others, with
# BFF_PROMETHEUS and BFF_PROMTOOL exported).
# Env: BFF_PROMETHEUS, BFF_PROMTOOL (default: /usr/bin/prometheus, /usr/bin/promtool).
set -euo pipefail
cd "$(dirname "$0")/.."

PROMETHEUS=${BFF_PROMETHEUS:-/usr/bin/prometheus}
PROMTOOL=${BFF_PROMTOOL:-/usr/bin/promtool}

if [ ! -x "$PROMETHEUS" ] || [ ! -x "$PROMTOOL" ]; then
  echo "== real prometheus: apt-get install prometheus"
  # The package's postinst runs `invoke-rc.d prometheus start` (its init script would start a
  # Prometheus on :9090 with the packaged config, and a failure there fails the install).
  # policy-rc.d answering 101 makes invoke-rc.d skip the start and succeed; it is put in place
  # only for this install, and only when the machine has none (container images often do).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# left by scripts/real-prometheus.sh only while it runs apt-get\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Read whole before matching: `grep -q` stopping early would fail the pipe under pipefail.
  candidate=$(apt-cache policy prometheus 2>/dev/null || true)
  if [[ $candidate != *"Candidate: "[0-9]* ]]; then
    timeout 300 apt-get -o DPkg::Lock::Timeout=120 update -qq
  fi
  timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -e "$policy" ] && grep -q 'scripts/real-prometheus.sh' "$policy"; then
    rm -f "$policy"
  fi
  trap - EXIT
  # Belt and braces: had the service been started anyway, stop it through its own init script
  # (by its pid file), so the tests' Prometheus is the only one.
  if [ -s /run/prometheus/prometheus.pid ] && kill -0 "$(cat /run/prometheus/prometheus.pid)" 2>/dev/null; then
    echo "== real prometheus: the package started its service; stopping it"
    /etc/init.d/prometheus stop || kill "$(cat /run/prometheus/prometheus.pid)"
  fi
fi
for p in "$PROMETHEUS" "$PROMTOOL"; do
  [ -x "$p" ] || { echo "real-prometheus.sh: $p is not an executable (BFF_PROMETHEUS / BFF_PROMTOOL?)" >&2; exit 1; }
done
echo "== real prometheus: $("$PROMETHEUS" --version 2>&1 | head -1)"
echo "== real prometheus: $("$PROMTOOL" --version 2>&1 | head -1)"

if [[ ${1:-} == --install-only ]]; then
  exit 0
fi

export BFF_PROMETHEUS="$PROMETHEUS" BFF_PROMTOOL="$PROMTOOL" BFF_INTEROP_REQUIRED=1
timeout 900 cargo test --locked --test it real_prometheus:: "$@"
