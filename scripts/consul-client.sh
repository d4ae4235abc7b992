#!/usr/bin/env bash
# Runs one of the real Consul client libraries against a Consul API address, for
# tests/integration/consul_clients.rs: `python` runs tests/consul/client.py with the pinned py-consul
# (scripts/consul-clients-requirements.txt, in its venv), `node` runs tests/consul/client.js with
# node-consul (`consul` in package-lock.json). Both read JSON commands on stdin and print one JSON
# answer a line. Installs nothing: scripts/prepare.sh (`make prepare`, the `consul` part) does that
# before the tests enter their loopback-only namespace.
#
# Usage: scripts/consul-client.sh python|node <base url> [token]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-} in
  python)
    venv="$(tool_venv consul-clients "$REPO_ROOT/scripts/consul-clients-requirements.txt")"
    shift
    exec "$venv/bin/python" "$REPO_ROOT/tests/consul/client.py" "$@"
    ;;
  node)
    need node "install Node.js"
    if [ ! -f "$REPO_ROOT/node_modules/consul/package.json" ]; then
      echo "error: node-consul is not installed (node_modules/consul); run 'make prepare' (scripts/prepare.sh) first" >&2
      exit 1
    fi
    shift
    exec node "$REPO_ROOT/tests/consul/client.js" "$@"
    ;;
  *)
    echo "usage: scripts/consul-client.sh python|node <base url> [token]" >&2
    exit 2
    ;;
esac
