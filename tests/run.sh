#!/bin/bash
# The one test command (README; .ci/run calls exactly this).
# Installs what the tests need (Debian packages, as root), then runs the
# gate: rustfmt, clippy with -D warnings, and every test: unit tests and
# integration tests against the real peers (ipmi_sim, ipmitool,
# fence_ipmilan, xmllint, ...), then each fuzz target briefly. A missing
# peer fails the run; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/lab/install.sh

# Nothing on this host may open a watchdog or write sysrq: the code refuses
# to while this is set (only QEMU guests, which do not inherit it, may).
export IRONFENCE_FORBID_HARDWARE=1

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings (default features, and with corosync)"
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --features corosync -- -D warnings
echo "== cargo test --features corosync"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --all-targets --locked --features corosync 2>&1 | tee "$log"

# Each fuzz target briefly (long runs are a command: see README). cargo-fuzz
# needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
echo "== cargo fuzz (${FUZZ_SECONDS:=20} s per target)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
for target in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" 2>&1 | tail -1
done
echo "fuzz: $(RUSTC_BOOTSTRAP=1 cargo fuzz list | wc -l) target(s) ran ${FUZZ_SECONDS} s each without a crash"

# The runner's totals, last, in the plain form CI reads.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
