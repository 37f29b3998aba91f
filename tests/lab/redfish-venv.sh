#!/bin/bash
# redfish-venv.sh - the Python venv of the Redfish test lab (idempotent; root
# only when something is missing). Called by tests/lab/install.sh; safe to run
# by hand:
#     sudo tests/lab/redfish-venv.sh
#
# It holds two PyPI peers, pinned:
#   sushy-tools  OpenStack's Redfish emulator (`sushy-emulator`, fake systems
#                driver): the BMC our Redfish client is tested against
#                (tests/support/sushy.rs, tests/sushy_lab.rs)
#   sushy        OpenStack's Redfish client library: a client our Redfish
#                simulator is tested against (tests/redfish_sim_interop.rs,
#                through tests/lab/sushy/sushy_client.py)
# What the emulator needs with the fake driver (Flask, bcrypt for the htpasswd
# file, requests, tenacity, WebOb) comes in as sushy-tools' dependencies; it
# needs no libvirt and no openstacksdk.
#
# Place: IRONFENCE_REDFISH_VENV (default /opt/ironfence-lab/redfish-venv).
# The venv is made with Debian's /usr/bin/python3 (apt python3-venv), never a
# pyenv `python3` shim. When the venv's python already imports every pin at
# its pinned version, nothing is installed and no network is used.
set -euo pipefail

IRONFENCE_REDFISH_VENV=${IRONFENCE_REDFISH_VENV:-/opt/ironfence-lab/redfish-venv}
# sushy 5.14.0 needs Python >= 3.11 (Debian 12 has 3.11.2); its dependencies
# (pbr, requests, python-dateutil, stevedore) agree with sushy-tools 2.2.0's.
IRONFENCE_REDFISH_PYPI="sushy-tools==2.2.0 sushy==5.14.0"

venv_ok() {
    [ -x "$IRONFENCE_REDFISH_VENV/bin/python" ] || return 1
    [ -x "$IRONFENCE_REDFISH_VENV/bin/sushy-emulator" ] || return 1
    # shellcheck disable=SC2086 # the pins are one word each
    "$IRONFENCE_REDFISH_VENV/bin/python" - $IRONFENCE_REDFISH_PYPI <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import bcrypt, flask, sushy, sushy_tools.emulator.main  # noqa: F401  (importable, not just listed)
PY
}

if venv_ok; then
    echo "redfish-venv.sh: $IRONFENCE_REDFISH_VENV has $IRONFENCE_REDFISH_PYPI; nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! { mkdir -p "$(dirname "$IRONFENCE_REDFISH_VENV")" 2>/dev/null && [ -w "$(dirname "$IRONFENCE_REDFISH_VENV")" ]; }; then
    echo "redfish-venv.sh: cannot create $IRONFENCE_REDFISH_VENV: run as root, or set IRONFENCE_REDFISH_VENV" >&2
    exit 1
fi

if ! { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; }; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "redfish-venv.sh: /usr/bin/python3 cannot make venvs; run as root to apt-get install python3-venv" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv # ensurepip for /usr/bin/python3 -m venv
fi

mkdir -p "$(dirname "$IRONFENCE_REDFISH_VENV")"
/usr/bin/python3 -m venv "$IRONFENCE_REDFISH_VENV"
# shellcheck disable=SC2086 # the pins are one word each
"$IRONFENCE_REDFISH_VENV/bin/pip" install --quiet --disable-pip-version-check $IRONFENCE_REDFISH_PYPI

if ! venv_ok; then
    echo "redfish-venv.sh: $IRONFENCE_REDFISH_VENV still lacks $IRONFENCE_REDFISH_PYPI after pip install" >&2
    exit 1
fi
echo "redfish-venv.sh: installed $IRONFENCE_REDFISH_PYPI into $IRONFENCE_REDFISH_VENV"
