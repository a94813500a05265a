#!/usr/bin/env bash
# Rackspace identity (v2 API key) against Rackspace's own mock, PyPI `mimic`: makes (once) a
# virtualenv with mimic under .cache/mimic-venv, then runs tests/it/real_mimic.rs with the
# prerequisite required, so a missing mimic fails instead of skipping. Extra arguments go to
# `cargo test`. `--venv-only` makes the virtualenv and stops (.ci/run then runs the test with
# the others).
# Env: PYTHON (default python3), BFF_MIMIC_VENV (default .cache/mimic-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${BFF_MIMIC_VENV:-$PWD/.cache/mimic-venv}
# Pinned: the whole set this was written and checked against on Debian 12's Python 3.11.
# mimic 2.2.0 is the last release (2018): it uses attr.validators.provides, which attrs 24.1.0
# removed (every newer attrs fails mimic's plugins at import), so attrs stays at 23.2.0, the
# last release that has it. Everything else is what pip picks for mimic today.
PKGS=(
  mimic==2.2.0 attrs==23.2.0
  Twisted==26.10.0 klein==24.8.0 treq==26.7.0 Werkzeug==3.1.9 Tubes==0.2.1
  Automat==25.4.16 constantly==23.10.4 hyperlink==21.0.0 incremental==24.11.0
  zope.interface==8.7 typing_extensions==4.16.0 idna==3.20 packaging==26.4
  pyOpenSSL==26.4.0 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 service-identity==26.1.0
  six==1.17.0 xmltodict==1.0.4 iso8601==2.1.0 testtools==1.7.1 extras==1.0.0
  python-mimeparse==2.0.0 linecache2==1.0.0 traceback2==1.4.0 unittest2==1.1.0 argparse==1.4.0
  MarkupSafe==3.0.4 multipart==2.0.1
)
# What proves the venv is whole: mimic's twistd plugin imports with the pinned attrs.
probe='import attr, mimic.tap, mimic.resource; assert attr.__version__ == "23.2.0", attr.__version__'

if [ ! -x "$VENV/bin/twistd" ] || ! "$VENV/bin/python" -c "$probe" 2>/dev/null; then
  # A bare Debian 12 has neither python3 nor its venv module (package python3-venv).
  if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== mimic: installing python3 python3-venv (apt)"
      apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv)
      "${apt[@]}" >/dev/null 2>&1 || { apt-get update -qq && "${apt[@]}" >/dev/null; }
    else
      echo "real-mimic: $PYTHON cannot make a virtualenv (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  echo "== mimic: creating $VENV (mimic 2.2.0, attrs 23.2.0, Twisted 26.10.0)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "${PKGS[@]}"
  "$VENV/bin/pip" check --disable-pip-version-check
  # Twisted writes its plugin cache (dropin.cache) on the first look at the plugins: once
  # here, instead of by the first tests' mimics at once.
  PYTHONWARNINGS=ignore "$VENV/bin/twistd" mimic --help >/dev/null
fi
"$VENV/bin/python" -W ignore -c "$probe"'
import importlib.metadata as m, sys
print("== mimic:", m.version("mimic"), "twisted", m.version("twisted"), "attrs", m.version("attrs"), "python", sys.version.split()[0])'

if [[ ${1:-} == --venv-only ]]; then
  exit 0
fi

export BFF_MIMIC_VENV="$VENV" BFF_INTEROP_REQUIRED=1
timeout 900 cargo test --locked --test it real_mimic:: "$@"
