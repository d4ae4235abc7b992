#!/usr/bin/env bash
# The local development loop: Azurite (tables on 127.0.0.1:10002, data kept in .azurite/) plus the
# handler in standalone mode on 127.0.0.1:7071, with the HealthMonitor schedule from
# HealthMonitor/function.json running inside it. Ctrl-C stops both.
#
# Loopback health targets are allowed here (HEALTH_ALLOW_LOOPBACK=true), unlike in production.
# Environment you may set: DISCOVERY_BIND, HEALTH_MONITOR_SCHEDULE (e.g. "*/30 * * * * *" to sweep every
# 30 s), RUST_LOG, RUST_LOG_FORMAT=json, and any storage variable (default: UseDevelopmentStorage=true).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
ensure_azurite

azurite_pid=""
cleanup() {
  if [ -n "$azurite_pid" ]; then kill "$azurite_pid" 2>/dev/null || true; wait "$azurite_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [ -z "${STORAGE_CONNECTION_STRING:-}${AZURE_STORAGETABLE_CONNECTIONSTRING:-}${AzureWebJobsStorage:-}" ]; then
  export AzureWebJobsStorage="UseDevelopmentStorage=true"
  if port_in_use 10002; then
    echo "something already listens on 127.0.0.1:10002; using it as Azurite"
  else
    mkdir -p .azurite
    "$AZURITE_TABLE" --tableHost 127.0.0.1 --tablePort 10002 --location .azurite \
      --skipApiVersionCheck --silent >/dev/null 2>.azurite/stderr.log &
    azurite_pid=$!
    wait_for_port 10002 30
    echo "Azurite tables on http://127.0.0.1:10002/devstoreaccount1 (data in .azurite/)"
  fi
fi

# The dev loop probes services on this machine; production refuses loopback targets by default.
export HEALTH_ALLOW_LOOPBACK="${HEALTH_ALLOW_LOOPBACK:-true}"

cargo build --release --locked --bin handler
echo "handler on http://${DISCOVERY_BIND:-127.0.0.1:7071} (Ctrl-C to stop)"
# Not exec: the trap must still stop Azurite when the handler exits.
./target/release/handler &
handler_pid=$!
trap 'kill -TERM "$handler_pid" 2>/dev/null || true; wait "$handler_pid" 2>/dev/null || true; cleanup' EXIT INT TERM
wait "$handler_pid"
