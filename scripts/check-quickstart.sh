#!/usr/bin/env bash
# Runs the README's quickstart against the dev loop and compares its outputs
# (scripts/check_quickstart.py says how steps are marked and what is masked), so the README cannot
# drift from what the handler answers. CI runs it after `make test`.
#
# It starts what `make run` starts (scripts/run-local.sh: Azurite on 127.0.0.1:10002, the dev-profile
# handler on 127.0.0.1:7071) with two differences, both so the outputs are the README's: Azurite's
# data goes to a scratch directory (empty tables; the reader's .azurite/ is left alone), and the
# timer is moved to once a year, because a five-minute tick landing between two steps would change
# the counts shown (the quickstart sweeps by hand, as it tells the reader to).
#
# Where its packets go: the build runs first (it may fetch crates), then everything else in a
# network namespace of its own holding only loopback (unshare --net), so ports 7071 and 10002 are
# free whatever runs on this machine, and nothing the quickstart registers can be reached outside it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
need python3 "Python 3"
need curl "Debian: curl"
need jq "Debian: jq"
if [ "${LOOPBACK_NETNS:-}" != 1 ]; then
  "$REPO_ROOT/scripts/prepare.sh" azurite
  cargo build --locked --bin handler --bin registry
fi
in_loopback_netns "$0" "$@"

scratch="$(mktemp -d)"
run_pid=""
cleanup() {
  if [ -n "$run_pid" ]; then kill -TERM "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

DEV_DATA_DIR="$scratch/azurite" HEALTH_MONITOR_SCHEDULE="0 0 0 1 1 *" CARGO_NET_OFFLINE=true \
  ./scripts/run-local.sh >"$scratch/run.log" 2>&1 &
run_pid=$!
if ! wait_for_port 7071 120; then
  echo "--- make run's output:"; cat "$scratch/run.log"; exit 1
fi
if ! python3 scripts/check_quickstart.py README.md; then
  echo "--- make run's output:"; cat "$scratch/run.log"; exit 1
fi
