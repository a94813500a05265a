#!/usr/bin/env bash
# Interop with Graphite's real carbon-relay: makes (once) a virtualenv with carbon from PyPI
# under .cache/carbon-venv, then runs tests/it/interop_carbon.rs with interop required, so a
# missing relay fails instead of skipping. Extra arguments go to `cargo test`.
# `--venv-only` makes the virtualenv and stops (.ci/run then runs the test with the others).
# Env: PYTHON (default python3), BFF_CARBON_VENV (default .cache/carbon-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${BFF_CARBON_VENV:-$PWD/.cache/carbon-venv}
# Pinned: the versions this was written and checked against (carbon 1.1.10 is the last release).
PKGS=(carbon==1.1.10 whisper==1.1.10 Twisted==26.10.0)

if [ ! -x "$VENV/bin/carbon-relay.py" ] || ! "$VENV/bin/python" -c 'import carbon, whisper, twisted' 2>/dev/null; then
  echo "== interop: creating $VENV (${PKGS[*]})"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}"
fi
"$VENV/bin/python" -c 'import carbon, twisted; print("== interop: carbon", "1.1.10", "twisted", twisted.__version__)'

if [[ ${1:-} == --venv-only ]]; then
  exit 0
fi

export BFF_CARBON_VENV="$VENV" BFF_INTEROP_REQUIRED=1 BFF_PYTHON="$PYTHON"
timeout 900 cargo test --locked --test it interop_carbon:: "$@"
