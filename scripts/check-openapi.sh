#!/usr/bin/env bash
# Validates an OpenAPI document (a file the caller wrote, e.g. the served GET /api/openapi.json) with
# the pinned openapi-spec-validator from PyPI, and checks the curl examples of README.md and docs/api.md against it
# (scripts/check_openapi.py). The validator's venv is installed by scripts/prepare.sh (part `openapi`, which `make test`
# runs first); this script never installs, because the integration test `openapi` runs it inside the loopback-only
# namespace.
#
# Usage: scripts/check-openapi.sh <openapi.json> [markdown files; default README.md docs/api.md]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

venv="$(tool_venv openapi-validator "$REPO_ROOT/scripts/openapi-requirements.txt")"
document=$1
shift
[ $# -gt 0 ] || set -- "$REPO_ROOT/README.md" "$REPO_ROOT/docs/api.md"
exec "$venv/bin/python" "$REPO_ROOT/scripts/check_openapi.py" "$document" "$@"
