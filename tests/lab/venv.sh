# venv.sh - the one place that names the lab venv of PyPI IPMI peers (pyghmi).
# Sourced by tests/lab/pyghmi-venv.sh (makes it) and tests/lab/pyghmi-bmc.sh
# (runs from it). Override the place with IRONFENCE_LAB_VENV=/some/dir.
IRONFENCE_LAB_VENV=${IRONFENCE_LAB_VENV:-/opt/ironfence-lab/venv}
# PyPI packages in it, pinned, one word each.
IRONFENCE_LAB_PYPI="pyghmi==1.6.19"
