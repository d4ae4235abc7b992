#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and the integration suite in tests/, which starts
# its own Azurite (from node_modules, installed here from package-lock.json) and the real handler
# binary, and imitates the Functions host. Extra arguments go to `cargo test`.
# (bench/tool.rs is an example with no tests; `make lint` compiles it.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
ensure_azurite
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary, so the total is not just the last binary's.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
