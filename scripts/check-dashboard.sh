#!/usr/bin/env bash
# Drives the dashboard in headless Chromium (scripts/check_dashboard.py) against a running handler
# that the caller started (the integration test `dashboard` does, with its own Azurite and a key).
# Chromium is Debian's package, installed here once when missing (apt-get, as root); Playwright for
# Python is pinned in scripts/dashboard-requirements.txt and installed into a cached venv (`ensure_venv` in lib.sh),
# and again only when that file changes. `playwright install` is never run: the script points
# Playwright at /usr/bin/chromium.
#
# Usage: scripts/check-dashboard.sh <base URL> <admin key> <screenshot.png>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need python3 "Python 3.9 or later with the venv module, for the pinned Playwright"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: needs Debian's chromium at /usr/bin/chromium; run: sudo apt-get install chromium" >&2
    exit 1
  fi
  echo "installing chromium (apt-get, once)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >&2
fi
venv="$(ensure_venv dashboard-browser "$REPO_ROOT/scripts/dashboard-requirements.txt" --no-deps)"
exec "$venv/bin/python" "$REPO_ROOT/scripts/check_dashboard.py" "$@"
