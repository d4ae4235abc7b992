#!/usr/bin/env bash
# Fuzzes the real handler from its own OpenAPI document with the pinned schemathesis
# (scripts/fuzz-requirements.txt, installed once per version of that file into a venv cached under
# ~/.cache/service-registry/). Checks: no 5xx (not_a_server_error), and every response conforms to
# the document (status code documented, content type, headers, body schema). Exit status:
# schemathesis's (non-zero when a check fails). CI runs it after `make test` (.ci/run).
#
# What it runs against: a debug build of the handler in standalone mode on 127.0.0.1 (a free port),
# with its own Azurite on another free port and scratch data, deleted afterwards. An admin API key
# (random, made here, given to the handler only as its SHA-256 digest) is configured, so every
# operation is exercised authenticated; the fuzzer also sends requests without it, which get 401.
#
# Where its packets go: only 127.0.0.1. The fuzzer registers whatever endpoints it generates and may
# call POST /HealthMonitor (the manual sweep, admin); the sweep may only probe what the SSRF guard
# allows, and the handler runs with HEALTH_ALLOW_CIDRS=127.0.0.0/8 and HEALTH_ALLOW_LOOPBACK=true, so
# every other address, whatever name or spelling the fuzzer chose, is refused at registration and
# again at probe time, before any connection. The timer is set to once a year (HEALTH_MONITOR_SCHEDULE,
# 1 January 00:00:00 UTC), so in practice only the fuzzer's own POST /HealthMonitor sweeps, and any
# sweep is held to the same allow list.
#
# Bounded: --max-examples per operation, a fixed --seed (repeatable), --max-time for the whole run,
# and a request timeout.
#
# Usage: scripts/fuzz.sh [extra schemathesis arguments]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need python3 "Python 3.9 or newer, with the venv module (Debian: python3-venv)"
need cargo "install Rust with rustup"
need sha256sum "coreutils"
ensure_azurite

requirements="$REPO_ROOT/scripts/fuzz-requirements.txt"
stamp="$(sha256sum "$requirements" | cut -c1-12)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/service-registry/schemathesis-$stamp"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis from scripts/fuzz-requirements.txt into $venv ..."
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps -r "$requirements"
fi

cargo build --locked --bin handler
handler_bin="$REPO_ROOT/target/debug/handler"

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

handler_port="$(free_port)"
# A clean environment: only what is set here reaches the handler (as in the integration harness).
env -i PATH="$PATH" HOME="$HOME" \
  STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$account_key;TableEndpoint=http://127.0.0.1:$azurite_port/$account;" \
  DISCOVERY_BIND="127.0.0.1:$handler_port" \
  REGISTRY_API_KEYS="fuzz admin * $digest" \
  HEALTH_ALLOW_LOOPBACK=true \
  HEALTH_ALLOW_CIDRS=127.0.0.0/8 \
  HEALTH_MONITOR_SCHEDULE="0 0 0 1 1 *" \
  RUST_LOG=warn \
  "$handler_bin" >"$scratch/handler.log" 2>&1 &
handler_pid=$!
wait_for_port "$handler_port" 30

base="http://127.0.0.1:$handler_port"
status=0
# From the scratch folder: schemathesis keeps a crash cache (.schemathesis/) in its working folder.
cd "$scratch"
"$venv/bin/schemathesis" run "$base/api/openapi.json" --url "$base" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${FUZZ_MAX_EXAMPLES:-50}" --seed "${FUZZ_SEED:-20261201}" \
  --max-time "${FUZZ_MAX_TIME:-120}" --request-timeout 10 --workers 1 \
  --generation-database none --no-color "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "== handler log (last 50 lines)"
  tail -n 50 "$scratch/handler.log"
fi
exit "$status"
