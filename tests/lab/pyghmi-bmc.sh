#!/bin/sh
# pyghmi-bmc.sh - start pyghmi's fake BMC (tests/lab/pyghmi_bmc.py) with the
# lab venv's python. Arguments go to pyghmi_bmc.py; it prints `READY <port>`.
# The exec chain keeps the PID: the caller's child PID is the BMC's.
# Exit 127 with a message naming the installer when the venv or pyghmi is
# missing (tests treat that as a missing peer and fail).
set -eu
here=$(cd "$(dirname -- "$0")" && pwd)
. "$here/venv.sh"
py=$IRONFENCE_LAB_VENV/bin/python
if [ ! -x "$py" ] || ! "$py" -c 'import pyghmi.ipmi.bmc' 2>/dev/null; then
    echo "missing test peer 'pyghmi' (venv $IRONFENCE_LAB_VENV): run tests/lab/install.sh (as root)" >&2
    exit 127
fi
exec "$py" "$here/pyghmi_bmc.py" "$@"
