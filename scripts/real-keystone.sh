#!/usr/bin/env bash
# End to end against a real OpenStack Keystone: makes (once) a virtualenv with keystone and
# gunicorn from PyPI under .cache/keystone-venv, then runs tests/it/real_keystone.rs with the
# prerequisite required, so a missing Keystone fails instead of skipping. Extra arguments go
# to `cargo test`. `--venv-only` makes the virtualenv and stops (.ci/run then runs the tests
# with the others). Env: PYTHON (default python3), BFF_KEYSTONE_VENV (default
# .cache/keystone-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${BFF_KEYSTONE_VENV:-$PWD/.cache/keystone-venv}
# Pinned: the versions this was written and checked against (gunicorn: what pip chose beside
# keystone 30.0.0; keystone's own dependencies are left to its requirements).
PKGS=(keystone==30.0.0 gunicorn==27.0.1)

# Debian's python3 makes virtualenvs only with python3-venv installed.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "real keystone: $PYTHON cannot make a virtualenv: install python3-venv" >&2
    exit 1
  fi
  echo "== real keystone: installing python3-venv (Debian)"
  apt_install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv)
  "${apt_install[@]}" > /dev/null 2>&1 || { apt-get update -qq && "${apt_install[@]}" > /dev/null; }
fi

if [ ! -x "$VENV/bin/keystone-manage" ] || [ ! -x "$VENV/bin/gunicorn" ] ||
  ! "$VENV/bin/python" -c 'import keystone, gunicorn' 2>/dev/null; then
  echo "== real keystone: creating $VENV (${PKGS[*]})"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}"
fi
"$VENV/bin/python" -c 'from importlib.metadata import version as v
print("== real keystone: keystone", v("keystone"), "gunicorn", v("gunicorn"))'

if [[ ${1:-} == --venv-only ]]; then
  exit 0
fi

export BFF_KEYSTONE_VENV="$VENV" BFF_INTEROP_REQUIRED=1
timeout 900 cargo test --locked --test it real_keystone:: "$@"
