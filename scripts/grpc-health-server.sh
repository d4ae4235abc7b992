#!/usr/bin/env bash
# Runs a real gRPC health server (grpcio's own, from the pinned grpcio-health-checking in
# scripts/grpc-health-requirements.txt) for tests/integration/check_grpc.rs: tests/grpc/health_server.py
# on 127.0.0.1, plaintext, or TLS with a certificate and key. Installs nothing: scripts/prepare.sh
# (the `grpc` part) does that before the tests enter their loopback-only namespace.
#
# Usage: scripts/grpc-health-server.sh [cert.pem key.pem]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
venv="$(tool_venv grpc-health "$REPO_ROOT/scripts/grpc-health-requirements.txt")"
exec "$venv/bin/python" "$REPO_ROOT/tests/grpc/health_server.py" "$@"
