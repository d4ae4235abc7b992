#!/usr/bin/env bash
# Validates an OpenAPI document (a file the caller wrote, e.g. the served GET /api/openapi.json) with
# the pinned openapi-spec-validator from PyPI, and checks the curl examples of README.md and docs/api.md against it
# (scripts/check_openapi.py). The validator is installed once into a cached venv (`ensure_venv` in lib.sh), and again
# only when scripts/openapi-requirements.txt changes. The integration test `openapi` runs this.
#
# Usage: scripts/check-openapi.sh <openapi.json> [markdown files; default README.md docs/api.md]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

venv="$(ensure_venv openapi-validator "$REPO_ROOT/scripts/openapi-requirements.txt" --no-deps)"
document=$1
shift
[ $# -gt 0 ] || set -- "$REPO_ROOT/README.md" "$REPO_ROOT/docs/api.md"
exec "$venv/bin/python" "$REPO_ROOT/scripts/check_openapi.py" "$document" "$@"
