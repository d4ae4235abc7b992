#!/usr/bin/env bash
# Drives the dashboard in headless Chromium (scripts/check_dashboard.py) against a running handler
# that the caller started (the integration test `dashboard` does, with its own Azurite and a key).
# Chromium is Debian's package and Playwright for Python is pinned in scripts/dashboard-requirements.txt; both are
# installed by scripts/prepare.sh (part `dashboard`, which `make test` runs first). This script never installs: the
# integration test `dashboard` runs it inside the loopback-only namespace. `playwright install` is never run: the
# script points Playwright at /usr/bin/chromium.
#
# With --graph first, scripts/check_dashboard_graph.py instead: the dependency graph and the timeline.
#
# Usage: scripts/check-dashboard.sh [--graph] <base URL> <admin key> <screenshot.png>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need python3 "Python 3.9 or later with the venv module, for the pinned Playwright"
if [ ! -x /usr/bin/chromium ]; then
  echo "error: Debian's chromium is not installed (/usr/bin/chromium); run 'make prepare' (scripts/prepare.sh) first" >&2
  exit 1
fi
venv="$(tool_venv dashboard-browser "$REPO_ROOT/scripts/dashboard-requirements.txt")"
check="$REPO_ROOT/scripts/check_dashboard.py"
if [ "${1:-}" = "--graph" ]; then
  check="$REPO_ROOT/scripts/check_dashboard_graph.py"
  shift
fi
exec "$venv/bin/python" "$check" "$@"
