#!/bin/bash
# The one test command (README; .ci/run calls exactly this).
# Installs what the tests need (Debian packages, as root), then runs the
# gate: rustfmt, clippy with -D warnings, and every test: unit tests and
# integration tests against the real peers (ipmi_sim, ipmitool,
# fence_ipmilan, xmllint). A missing peer fails the run; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/lab/install.sh

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
