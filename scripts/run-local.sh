#!/usr/bin/env bash
# The local development loop: Azurite (tables on 127.0.0.1:10002, data kept in .azurite/) plus the
# handler in standalone mode on 127.0.0.1:7071, with the HealthMonitor schedule from
# HealthMonitor/function.json running inside it. Ctrl-C stops both. `make reset` deletes .azurite/.
#
# It builds the dev profile (target/debug), the one `make test` builds too, so the first `make test`
# after a `make run` reuses every dependency instead of compiling a second, release profile; the
# registry CLI is built beside the handler because the README's quickstart uses both.
#
# Loopback health targets are allowed here (HEALTH_ALLOW_LOOPBACK=true), unlike in production.
# Environment you may set: DISCOVERY_BIND, HEALTH_MONITOR_SCHEDULE (e.g. "*/15 * * * * *" to sweep every
# 15 s; with HEALTH_CIRCUIT_BACKOFF_MS lowered too, or an open circuit still waits 5 minutes), RUST_LOG,
# RUST_LOG_FORMAT=json, any storage variable (default: UseDevelopmentStorage=true), and
# DEV_DATA_DIR (default .azurite: where Azurite keeps the tables; scripts/check-quickstart.sh uses a
# scratch directory).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
ensure_azurite
data_dir="${DEV_DATA_DIR:-.azurite}"

azurite_pid=""
cleanup() {
  if [ -n "$azurite_pid" ]; then kill "$azurite_pid" 2>/dev/null || true; wait "$azurite_pid" 2>/dev/null || true; fi
  rm -f "$data_dir/run-local.pid"
}
trap cleanup EXIT INT TERM

mkdir -p "$data_dir"
# `make reset` reads this and refuses while the loop runs.
echo $$ >"$data_dir/run-local.pid"

if [ -z "${STORAGE_CONNECTION_STRING:-}${AZURE_STORAGETABLE_CONNECTIONSTRING:-}${AzureWebJobsStorage:-}" ]; then
  export AzureWebJobsStorage="UseDevelopmentStorage=true"
  if port_in_use 10002; then
    echo "something already listens on 127.0.0.1:10002; using it as Azurite"
  else
    "$AZURITE_TABLE" --tableHost 127.0.0.1 --tablePort 10002 --location "$data_dir" \
      --skipApiVersionCheck --silent --disableTelemetry >/dev/null 2>"$data_dir/stderr.log" &
    azurite_pid=$!
    wait_for_port 10002 30
    echo "Azurite tables on http://127.0.0.1:10002/devstoreaccount1 (data in $data_dir/, Azurite's errors in $data_dir/stderr.log)"
  fi
fi

# The dev loop probes services on this machine; production refuses loopback targets by default.
export HEALTH_ALLOW_LOOPBACK="${HEALTH_ALLOW_LOOPBACK:-true}"

target_dir="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target_dir/debug/handler" ]; then
  echo "building handler and registry (dev profile, into $target_dir/debug): a first build compiles about 250 crates," \
    "several minutes (9 on a busy 2-core machine); make test reuses them. cargo's progress follows."
fi
cargo build --locked --bin handler --bin registry
echo "handler on http://${DISCOVERY_BIND:-127.0.0.1:7071} (Ctrl-C to stop)"
# Not exec: the trap must still stop Azurite when the handler exits.
"$target_dir/debug/handler" &
handler_pid=$!
trap 'kill -TERM "$handler_pid" 2>/dev/null || true; wait "$handler_pid" 2>/dev/null || true; cleanup' EXIT INT TERM
wait "$handler_pid"
