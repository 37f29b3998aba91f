#!/bin/bash
# pyghmi-venv.sh - the Python venv of the IPMI test lab (idempotent; root only
# when something is missing). Called by tests/lab/install.sh; safe to run by
# hand:
#     sudo tests/lab/pyghmi-venv.sh
#
# It holds one PyPI peer, pinned: pyghmi, whose fake BMC is a second IPMI
# server nobody on this project wrote (tests/ipmi_pyghmi.rs, started by
# tests/lab/pyghmi-bmc.sh). Place and pins: tests/lab/venv.sh
# (IRONFENCE_LAB_VENV, default /opt/ironfence-lab/venv).
#
# The venv is made with Debian's /usr/bin/python3 (apt python3-venv), never a
# pyenv `python3` shim. When the venv's python already imports every pin at
# its pinned version, nothing is installed and no network is used.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/venv.sh
. "$here/venv.sh"

venv_ok() {
    [ -x "$IRONFENCE_LAB_VENV/bin/python" ] || return 1
    # shellcheck disable=SC2086 # the pins are one word each
    "$IRONFENCE_LAB_VENV/bin/python" - $IRONFENCE_LAB_PYPI <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import pyghmi.ipmi.bmc, pyghmi.cmd.fakebmc  # noqa: F401  (importable, not just listed)
PY
}

if venv_ok; then
    echo "pyghmi-venv.sh: $IRONFENCE_LAB_VENV has $IRONFENCE_LAB_PYPI; nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! { mkdir -p "$(dirname "$IRONFENCE_LAB_VENV")" 2>/dev/null && [ -w "$(dirname "$IRONFENCE_LAB_VENV")" ]; }; then
    echo "pyghmi-venv.sh: cannot create $IRONFENCE_LAB_VENV: run as root, or set IRONFENCE_LAB_VENV" >&2
    exit 1
fi

if ! { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; }; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pyghmi-venv.sh: /usr/bin/python3 cannot make venvs; run as root to apt-get install python3-venv" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv # ensurepip for /usr/bin/python3 -m venv
fi

mkdir -p "$(dirname "$IRONFENCE_LAB_VENV")"
/usr/bin/python3 -m venv "$IRONFENCE_LAB_VENV"
# shellcheck disable=SC2086 # the pins are one word each
"$IRONFENCE_LAB_VENV/bin/pip" install --quiet --disable-pip-version-check $IRONFENCE_LAB_PYPI

if ! venv_ok; then
    echo "pyghmi-venv.sh: $IRONFENCE_LAB_VENV still lacks $IRONFENCE_LAB_PYPI after pip install" >&2
    exit 1
fi
echo "pyghmi-venv.sh: installed $IRONFENCE_LAB_PYPI into $IRONFENCE_LAB_VENV"
