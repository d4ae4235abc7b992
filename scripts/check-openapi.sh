#!/usr/bin/env bash
# Validates an OpenAPI document (a file the caller wrote, e.g. the served GET /api/openapi.json) with
# the pinned openapi-spec-validator from PyPI, and checks the README's curl examples against it
# (scripts/check_openapi.py). The validator is installed once into a venv under .tools/, and again
# only when scripts/openapi-requirements.txt changes. The integration test `openapi` runs this.
#
# Usage: scripts/check-openapi.sh <openapi.json> [README.md]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need python3 "Python 3.9 or later with the venv module, for the pinned OpenAPI validator"
venv="$REPO_ROOT/.tools/openapi-validator"
requirements="$REPO_ROOT/scripts/openapi-requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
  echo "installing the pinned openapi-spec-validator into .tools/openapi-validator (once)..." >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements" >&2
  cp "$requirements" "$venv/requirements.txt"
fi
exec "$venv/bin/python" "$REPO_ROOT/scripts/check_openapi.py" "$1" "${2:-$REPO_ROOT/README.md}"
