#!/usr/bin/env bash
# Installs everything the tests and checks need, before any of them enters the loopback-only
# network namespace (where there is no network: nothing inside it may install). `make test` runs
# `prepare.sh test`, `make prepare` and CI run `prepare.sh all`; each check that needs a tool runs the
# part it needs, so every make target also works alone on a fresh machine. Each part is a check
# first and installs only what is missing or out of date, so running it again costs seconds.
#
# Parts (arguments; default: test):
#   azurite    Azurite and the recipe's npm packages, exactly as package-lock.json pins them (npm ci)
#   crates     every crate in Cargo.lock (cargo fetch), so the builds need no network after this
#   openapi    the pinned OpenAPI validator (scripts/openapi-requirements.txt), for the `openapi` test
#   dashboard  Debian's chromium (apt-get, as root) and pinned Playwright for Python
#              (scripts/dashboard-requirements.txt; its own browser download is never used)
#   consul     pinned py-consul (scripts/consul-clients-requirements.txt), for the `consul_clients`
#              test (the npm `consul` client comes with `azurite`: package-lock.json)
#   grpc       pinned grpcio and grpcio-health-checking (scripts/grpc-health-requirements.txt), the
#              real gRPC health server of the gRPC check tests (scripts/grpc-health-server.sh)
#   fuzz       pinned schemathesis (scripts/fuzz-requirements.txt), for scripts/fuzz.sh
#   checkov    pinned checkov (scripts/checkov-requirements.txt), for scripts/checkov.sh
#   debian     the pinned Debian packages of lint, package and check-package (shellcheck, musl-tools,
#              debootstrap; as root)
#   musl       the Rust standard library for x86_64-unknown-linux-musl (rustup), for make package
#   test       = azurite crates openapi dashboard consul grpc (what `make test` needs)
#   all        = test fuzz checkov debian musl (what CI needs)
#
# The Python venvs go under PYTHON_TOOLS_DIR (scripts/lib.sh; default ~/.cache/service-registry).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

if [ "${LOOPBACK_NETNS:-}" = 1 ]; then
  echo "error: scripts/prepare.sh installs from the network; run it before entering the loopback namespace" >&2
  exit 1
fi

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the dashboard test needs Debian's chromium at /usr/bin/chromium; run: sudo apt-get install chromium" >&2
    exit 1
  fi
  echo "installing chromium (apt-get, once)..."
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
}

prepare() {
  case $1 in
    azurite) ensure_azurite ;;
    crates)
      need cargo "install Rust with rustup"
      cargo fetch --locked
      ;;
    openapi) install_venv openapi-validator scripts/openapi-requirements.txt --no-deps ;;
    dashboard)
      ensure_chromium
      install_venv dashboard-browser scripts/dashboard-requirements.txt --no-deps
      ;;
    consul)
      ensure_azurite
      if [ ! -f node_modules/consul/package.json ]; then
        echo "installing node-consul from package-lock.json (npm ci)..."
        npm ci --no-audit --no-fund --loglevel=error
      fi
      install_venv consul-clients scripts/consul-clients-requirements.txt --no-deps
      ;;
    grpc) install_venv grpc-health scripts/grpc-health-requirements.txt --no-deps ;;
    fuzz) install_venv schemathesis scripts/fuzz-requirements.txt --no-deps ;;
    checkov)
      need python3 "Python 3.11.5 or newer, with the venv module"
      if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))'; then
        echo "error: checkov's pinned set needs Python 3.11.5 or newer; python3 is $(python3 --version 2>&1)" >&2
        exit 1
      fi
      install_venv checkov scripts/checkov-requirements.txt
      ;;
    debian) ensure_deb "shellcheck=$DEB_SHELLCHECK" "musl-tools=$DEB_MUSL_TOOLS" "debootstrap=$DEB_DEBOOTSTRAP" ;;
    musl)
      if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        need rustup "the musl target is added with rustup"
        rustup target add x86_64-unknown-linux-musl
      fi
      ;;
    test) for part in azurite crates openapi dashboard consul grpc; do prepare "$part"; done ;;
    all) for part in test fuzz checkov debian musl; do prepare "$part"; done ;;
    *)
      echo "error: unknown part '$1' (azurite, crates, openapi, dashboard, consul, grpc, fuzz, checkov, debian, musl, test, all)" >&2
      exit 2
      ;;
  esac
}

[ $# -gt 0 ] || set -- test
for part in "$@"; do prepare "$part"; done
