#!/usr/bin/env bash
# Fuzzes the real handler from its own OpenAPI document with the pinned schemathesis
# (scripts/fuzz-requirements.txt, installed by scripts/prepare.sh once per version of that file into a venv
# under PYTHON_TOOLS_DIR, by default ~/.cache/service-registry/). Checks: no 5xx (not_a_server_error), and every response conforms to
# the document (status code documented, content type, headers, body schema). Exit status:
# schemathesis's (non-zero when a check fails). CI runs it after `make test` (.ci/run).
#
# What it runs against: a debug build of the handler on 127.0.0.1 (a free port), with its own Azurite
# on another free port and scratch data, deleted afterwards, in two passes. Standalone: every
# operation, with an admin API key (random, made here, given to the handler only as its SHA-256
# digest), so the authenticated operations are exercised too. Custom-handler mode (the environment
# the Functions host gives; no keys of ours): the envelope routes and GET /, served only there.
#
# Where its packets go: only 127.0.0.1, inside a network namespace that holds nothing but loopback
# (unshare --net, after the install and the build). The fuzzer registers whatever endpoints it generates and may
# call POST /HealthMonitor (the manual sweep, admin); the sweep may only probe what the SSRF guard
# allows, and the handler runs with HEALTH_ALLOW_CIDRS=127.0.0.0/8 and HEALTH_ALLOW_LOOPBACK=true, so
# every other address, whatever name or spelling the fuzzer chose, is refused at registration and
# again at probe time, before any connection. The timer is set to once a year (HEALTH_MONITOR_SCHEDULE,
# 1 January 00:00:00 UTC), so in practice only the fuzzer's own POST /HealthMonitor sweeps, and any
# sweep is held to the same allow list.
#
# Bounded: --max-examples per operation and phase, a fixed --seed, one worker (two tripped a Python
# ast error inside hypothesis), --max-time per pass (what ends a pass in practice), a request timeout.
#
# Usage: scripts/fuzz.sh [extra schemathesis arguments]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need python3 "Python 3.9 or newer, with the venv module (Debian: python3-venv)"
need cargo "install Rust with rustup"
need sha256sum "coreutils"
# Installs and the build run once, before the script re-runs itself inside the namespace below.
if [ "${LOOPBACK_NETNS:-}" != 1 ]; then
  "$REPO_ROOT/scripts/prepare.sh" azurite fuzz
  cargo build --locked --bin handler
fi
venv="$(tool_venv schemathesis "$REPO_ROOT/scripts/fuzz-requirements.txt")"
handler_bin="$REPO_ROOT/target/debug/handler"

# The rest runs in a network namespace of its own that holds only loopback: Azurite, the handler
# and schemathesis talk over its 127.0.0.1, and nothing can leave it, not even the DNS query a
# probe of a generated host name would make (it fails at once; the name counts as unreachable).
in_loopback_netns "$0" "$@"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

scratch="$(mktemp -d)"
azurite_pid="" handler_pid=""
# shellcheck disable=SC2317 # run by the trap below
cleanup() {
  for pid in $handler_pid $azurite_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf -- "$scratch"
}
trap cleanup EXIT INT TERM

azurite_port="$(free_port)"
"$AZURITE_TABLE" --tableHost 127.0.0.1 --tablePort "$azurite_port" --location "$scratch/azurite" \
  --silent --skipApiVersionCheck --disableProductStyleUrl --disableTelemetry \
  >"$scratch/azurite.log" 2>&1 &
azurite_pid=$!
wait_for_port "$azurite_port" 30

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
account=devstoreaccount1
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
key="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
digest="$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"

storage="DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$account_key;TableEndpoint=http://127.0.0.1:$azurite_port/$account;"

# One pass: starts the handler in mode $1 on a free port with a clean environment (only what is set
# here reaches it, as in the integration harness), runs schemathesis for at most $2 seconds with the
# remaining arguments, stops the handler. Sets $status to non-zero when schemathesis fails.
status=0
fuzz_pass() {
  local mode=$1 max_time=$2 port rc=0
  shift 2
  port="$(free_port)"
  local -a mode_env auth
  if [ "$mode" = standalone ]; then
    mode_env=(DISCOVERY_BIND="127.0.0.1:$port" REGISTRY_API_KEYS="fuzz admin * $digest")
    auth=(--header "Authorization: Bearer $key")
  else
    # As the Functions host starts a custom handler; the host's function keys are its own check,
    # so the handler admits every request (every envelope's inner request included).
    mode_env=(FUNCTIONS_CUSTOMHANDLER_PORT="$port" FUNCTIONS_APP_ROOT_PATH="$REPO_ROOT"
      FUNCTIONS_WORKER_RUNTIME=custom)
    auth=()
  fi
  env -i PATH="$PATH" HOME="$HOME" STORAGE_CONNECTION_STRING="$storage" "${mode_env[@]}" \
    HEALTH_ALLOW_LOOPBACK=true HEALTH_ALLOW_CIDRS=127.0.0.0/8 HEALTH_MONITOR_SCHEDULE="0 0 0 1 1 *" \
    RUST_LOG=warn "$handler_bin" >"$scratch/handler-$mode.log" 2>&1 &
  handler_pid=$!
  wait_for_port "$port" 30
  echo "== fuzz pass: $mode (at most ${max_time}s)"
  local base="http://127.0.0.1:$port"
  # From the scratch folder: schemathesis keeps a crash cache (.schemathesis/) in its working folder.
  (cd "$scratch" && "$venv/bin/schemathesis" run "$base/api/openapi.json" --url "$base" "${auth[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "${FUZZ_MAX_EXAMPLES:-50}" --seed "${FUZZ_SEED:-20261201}" \
    --max-time "$max_time" --request-timeout 10 --workers 1 \
    --generation-database none --no-color "$@") || rc=$?
  if [ "$rc" != 0 ]; then
    echo "== handler log ($mode, last 50 lines)"
    tail -n 50 "$scratch/handler-$mode.log"
    status=$rc
  fi
  kill "$handler_pid" 2>/dev/null || true
  wait "$handler_pid" 2>/dev/null || true
  handler_pid=""
}

# Standalone: every operation, authenticated as admin (the envelope routes answer their 404 there).
fuzz_pass standalone "${FUZZ_MAX_TIME:-100}" "$@"
# Custom-handler mode: the envelope routes and GET /, which only the host reaches there.
fuzz_pass custom-handler "${FUZZ_HOST_MAX_TIME:-40}" --exclude-path-regex '^/api/' "$@"
exit "$status"
