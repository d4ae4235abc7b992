# Shared by the project's scripts: install Azurite from the lockfile and start or stop it.
# Sourced, not run.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZURITE_TABLE="$REPO_ROOT/node_modules/.bin/azurite-table"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required but not on PATH${2:+ ($2)}" >&2; exit 1; }
}

# Installs Azurite (and the recipe's packages its test runs on) exactly as pinned in
# package-lock.json, only when missing or out of date.
ensure_azurite() {
  need node "install Node.js 22 or later (what the pinned Azurite declares)"
  need npm "it comes with Node.js"
  if [ ! -x "$AZURITE_TABLE" ] || [ ! -f "$REPO_ROOT/node_modules/@azure/data-tables/package.json" ] \
    || [ "$REPO_ROOT/package-lock.json" -nt "$REPO_ROOT/node_modules/.package-lock.json" ]; then
    echo "installing Azurite and the recipe's packages from package-lock.json (npm ci)..."
    (cd "$REPO_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Waits until something accepts TCP connections on 127.0.0.1:$1 (at most $2 seconds).
wait_for_port() {
  local port=$1 seconds=${2:-30} i
  for ((i = 0; i < seconds * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: nothing is listening on 127.0.0.1:$port after ${seconds}s" >&2
  return 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
