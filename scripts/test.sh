#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and the integration suite in tests/, which starts
# its own Azurite (from node_modules, installed from package-lock.json) and the real handler
# binary, and imitates the Functions host. Extra arguments go to `cargo test`.
# (bench/tool.rs is an example with no tests; `make lint` compiles it.)
#
# Where its packets go: everything the suite needs is installed first (scripts/prepare.sh test:
# Azurite, the crates, the OpenAPI validator, Chromium and Playwright, the Consul clients, the gRPC
# health server) and the tests are built,
# then they run in a network namespace of their own that holds only loopback (unshare --net), so
# Azurite, the handler, the
# imitated Azure endpoints and every probe target talk over its 127.0.0.1 and nothing can leave it,
# not even a DNS query for a registered host name (it fails at once, inside the namespace).
# TEST_NETNS=0 runs the tests in the current namespace instead (where unshare is not permitted).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
if [ "${LOOPBACK_NETNS:-}" != 1 ]; then
  # Every install happens here, outside the namespace: inside it nothing can be fetched.
  "$REPO_ROOT/scripts/prepare.sh" test
  cargo test --locked --lib --bins --tests --no-run "$@"
  [ "${TEST_NETNS:-1}" = 0 ] || in_loopback_netns "$0" "$@"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --offline --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary, so the total is not just the last binary's.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
