# shellcheck shell=bash
# Shared by the project's scripts: install the tools they need (Azurite from the lockfile, pinned
# Debian packages, pinned Python venvs) or find them installed, wait for ports, and enter the
# loopback-only network namespace. Sourced, not run. What gets installed when: scripts/prepare.sh.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZURITE_TABLE="$REPO_ROOT/node_modules/.bin/azurite-table"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required but not on PATH${2:+ ($2)}" >&2; exit 1; }
}

# Debian packages the scripts install, pinned to the versions in Debian 12 (bookworm), which is what
# the development machines and CI run. A lint tool's findings change with its version, and a build
# should not change under us, so a different installed version is replaced by the pinned one.
# When Debian drops a pinned version (a point release), apt-get says so: update the pin here.
# shellcheck disable=SC2034 # read by the scripts that source this file
{
  DEB_SHELLCHECK=0.9.0-1                 # scripts/lint.sh
  DEB_MUSL_TOOLS=1.2.3-1                 # infra/package.sh: musl-gcc, for ring's C code
  DEB_DEBOOTSTRAP=1.0.128+nmu2+deb12u2   # scripts/check-package.sh: the Debian 11 root
}

# Installs each "package=version" that is not installed at exactly that version, with apt-get
# (as root). Elsewhere it stops and prints the command to run.
ensure_deb() {
  local spec name want have missing=()
  for spec in "$@"; do
    name=${spec%%=*} want=${spec#*=}
    have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
    [ "$have" = "$want" ] || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: needs the Debian packages ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} (apt-get)..."
  # The package lists may be missing or stale on a fresh machine.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends --allow-downgrades "${missing[@]}" >/dev/null
}

# Installs Azurite (and the recipe's packages its test runs on) exactly as pinned in
# package-lock.json, only when missing or out of date.
ensure_azurite() {
  need node "install Node.js 22 or later (what the pinned Azurite declares)"
  need npm "it comes with Node.js"
  if [ ! -x "$AZURITE_TABLE" ] || [ ! -f "$REPO_ROOT/node_modules/@azure/data-tables/package.json" ] \
    || [ "$REPO_ROOT/package-lock.json" -nt "$REPO_ROOT/node_modules/.package-lock.json" ]; then
    if [ "${LOOPBACK_NETNS:-}" = 1 ]; then
      echo "error: Azurite is not installed (node_modules/); run 'make prepare' (scripts/prepare.sh) first" >&2
      exit 1
    fi
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

# Where the pinned Python tools live, one venv per tool and version of its requirements file:
# PYTHON_TOOLS_DIR, by default the machine's cache (~/.cache/service-registry/). CI points it at a
# fresh, empty directory on every run, so a missing install step fails CI instead of hiding.
PYTHON_TOOLS_DIR="${PYTHON_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/service-registry}"

# The venv of tool $1 for requirements file $2 (whether or not it is installed yet).
venv_path() {
  echo "$PYTHON_TOOLS_DIR/$1-$(sha256sum "$2" | cut -c1-12)"
}

# Installs the venv of tool $1 with exactly the pinned packages of requirements file $2, once per
# version of that file. Further arguments go to pip install (e.g. --no-deps when the file pins
# every dependency). Only scripts/prepare.sh calls it: it needs the network.
install_venv() {
  local name=$1 requirements=$2 venv
  shift 2
  need python3 "Python 3.9 or newer, with the venv module (Debian: python3-venv)"
  venv="$(venv_path "$name" "$requirements")"
  [ -f "$venv/.installed" ] && return 0
  echo "installing the pinned packages of ${requirements#"$REPO_ROOT"/} into $venv (once)..."
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" -r "$requirements"
  touch "$venv/.installed"
}

# Prints the path of tool $1's venv (requirements file $2), installed by scripts/prepare.sh. Never
# installs: the checks that use a venv run inside the loopback-only namespace, where there is no
# network, so a missing tool fails at once with the step to run.
tool_venv() {
  local venv
  venv="$(venv_path "$1" "$2")"
  if [ ! -f "$venv/.installed" ]; then
    echo "error: the pinned $1 tools are not installed ($venv); run 'make prepare' (scripts/prepare.sh) first" >&2
    exit 1
  fi
  echo "$venv"
}

# Re-runs the calling script inside a network namespace of its own that holds only loopback, with lo
# up, so everything it starts talks over that namespace's 127.0.0.1 and no packet can leave it (not
# even a DNS query). Call it as `in_loopback_netns "$0" "$@"` after anything that needs the network
# (builds, installs); it returns only inside the namespace (where LOOPBACK_NETNS=1 is set), so the
# second run of the script passes straight through it.
in_loopback_netns() {
  [ "${LOOPBACK_NETNS:-}" = 1 ] && return 0
  need unshare "util-linux"
  need ip "iproute2"
  local userns=()
  [ "$(id -u)" = 0 ] || userns=(--map-root-user)
  # shellcheck disable=SC2016 # expanded by the inner shell
  exec unshare "${userns[@]}" --net env LOOPBACK_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$@"
}
