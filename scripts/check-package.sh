#!/usr/bin/env bash
# Proves that the deployment package starts where the Functions host runs it, not just here.
#
# Builds dist/registry-app.zip (infra/package.sh), unzips it into a Debian 11 (bullseye) minbase
# root, the glibc 2.31 generation of the Functions Linux images for v4, and runs the packaged
# `handler` there with chroot, started the way the host starts it (FUNCTIONS_CUSTOMHANDLER_PORT,
# working directory the app root, an environment holding only what is set here). chroot shares
# the network namespace, so the handler reaches an Azurite started outside the root on 127.0.0.1
# (its own free port and data directory). Then: GET / answers, a registration is stored, discovery
# finds it, and one HealthMonitor sweep probes it (the handler itself, on 127.0.0.1) as healthy.
# Last, for the record only, it runs a glibc build of the handler in the same root: that fails to
# load there (GLIBC_2.3x not found), which is what the static package guards against.
#
# The root is made once with `debootstrap --variant=minbase bullseye` (debootstrap's default
# source) and cached as a tarball; every run unpacks a fresh copy, so nothing one run leaves in it
# reaches the next. Needs root (debootstrap, chroot): CI runs as root (.ci/run).
#
# Environment (all optional):
#   SKIP_PACKAGE=1            check the existing dist/registry-app.zip instead of building it
#   GLIBC_HANDLER=<path>      the glibc build to show failing (default: target/release/handler,
#                             else target/debug/handler, which `make test` builds; none: skipped)
#   ROOT_CACHE=<file>         the cached root (default:
#                             ~/.cache/service-registry/debian-bullseye-minbase-amd64.tar);
#                             delete it to make a new one
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

die() { echo "check-package.sh: error: $*" >&2; exit 1; }
step() { echo "==> [$((SECONDS - started))s] $*"; }
started=$SECONDS

[ "$(id -u)" = 0 ] || die "needs root, for debootstrap and chroot (CI runs as root)"
[ "$(uname -m)" = x86_64 ] || die "the package is for x86-64; this machine is $(uname -m)"
need curl
need unzip
need tar
ensure_deb "debootstrap=$DEB_DEBOOTSTRAP"
ensure_azurite
chroot_bin=$(command -v chroot) || die "chroot (coreutils) not found"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/check-package.XXXXXX")
azurite_pid="" handler_pid=""
stop() { # stops a process this script started, by its PID
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop "$handler_pid"
  stop "$azurite_pid"
  # Nothing is ever mounted in the root, so this removes only files this run made.
  rm -rf --one-file-system -- "$scratch"
  [ -z "${cache:-}" ] || rm -f -- "$cache.partial.$$"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "check-package.sh: FAILED: $*" >&2
  for log in handler.log azurite.log; do
    if [ -s "$scratch/$log" ]; then echo "--- last lines of $log" >&2; tail -n 40 "$scratch/$log" >&2; fi
  done
  exit 1
}

# --- 1. the package ------------------------------------------------------------------------------
zip=dist/registry-app.zip
if [ "${SKIP_PACKAGE:-0}" = 1 ]; then
  step "SKIP_PACKAGE=1: checking the existing $zip"
else
  step "make package (infra/package.sh)"
  package_started=$SECONDS
  ./infra/package.sh
  step "package built in $((SECONDS - package_started))s"
fi
[ -s "$zip" ] || die "no $zip (run make package)"

# --- 2. the Debian 11 root -----------------------------------------------------------------------
cache=${ROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/service-registry/debian-bullseye-minbase-amd64.tar}
if [ ! -s "$cache" ]; then
  step "no cached root at $cache: debootstrap --variant=minbase bullseye (once)"
  bootstrap_started=$SECONDS
  mkdir -p "$(dirname "$cache")"
  if ! debootstrap --variant=minbase --arch=amd64 bullseye "$scratch/bootstrap" >"$scratch/debootstrap.log" 2>&1; then
    tail -n 30 "$scratch/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  # apt's downloaded packages and lists (80 MB) are no part of a running system; Debian's own
  # container images leave them out too.
  rm -rf --one-file-system -- "$scratch/bootstrap/var/cache/apt/archives/"*.deb "$scratch/bootstrap/var/lib/apt/lists/"*
  # Written under a temporary name and renamed, so an interrupted run never leaves half a cache.
  tar --numeric-owner -C "$scratch/bootstrap" -cf "$cache.partial.$$" .
  mv -- "$cache.partial.$$" "$cache"
  rm -rf --one-file-system -- "$scratch/bootstrap"
  step "root made and cached in $((SECONDS - bootstrap_started))s ($(du -h "$cache" | cut -f1))"
else
  step "using the cached root $cache"
fi
root=$scratch/root
mkdir -p "$root"
tar --numeric-owner -C "$root" -xf "$cache" || die "the cached root $cache is unreadable: delete it to make a new one"
debian_version=$(cat "$root/etc/debian_version" 2>/dev/null || true)
case "$debian_version" in
  11.*) ;;
  *) die "the root at $cache is Debian '${debian_version:-unknown}', not 11: delete it to make a new one" ;;
esac
root_glibc=$("$chroot_bin" "$root" /usr/bin/ldd --version 2>/dev/null | head -n 1 || true)
step "root: Debian $debian_version; ${root_glibc:-glibc version unknown}"

# Where the Functions host unpacks a zip deployment.
app=/home/site/wwwroot
mkdir -p "$root$app"
unzip -q "$zip" -d "$root$app"
[ -x "$root$app/handler" ] || die "$zip holds no executable handler"

# --- 3. Azurite outside the root -----------------------------------------------------------------
free_port() {
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 30000))
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  die "found no free port on 127.0.0.1"
}
azurite_port=$(free_port)
"$AZURITE_TABLE" --tableHost 127.0.0.1 --tablePort "$azurite_port" --location "$scratch/azurite" \
  --skipApiVersionCheck --silent --disableTelemetry >"$scratch/azurite.log" 2>&1 &
azurite_pid=$!
wait_for_port "$azurite_port" 30 || fail "Azurite did not start"
kill -0 "$azurite_pid" 2>/dev/null || fail "Azurite exited (port $azurite_port taken?)"
step "Azurite on 127.0.0.1:$azurite_port (pid $azurite_pid)"

# --- 4. the packaged handler in the root ---------------------------------------------------------
handler_port=$(free_port)
while [ "$handler_port" = "$azurite_port" ]; do handler_port=$(free_port); done
# Azurite's documented development account; its key is public, the same in every Azurite.
account=devstoreaccount1
account_key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
connection="DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$account_key;TableEndpoint=http://127.0.0.1:$azurite_port/$account;"
# env -i: the handler sees only these variables. It runs as nobody (65534), from the app root.
# HEALTH_ALLOW_LOOPBACK: the sweep below probes the handler itself on 127.0.0.1.
env -i FUNCTIONS_CUSTOMHANDLER_PORT="$handler_port" STORAGE_CONNECTION_STRING="$connection" \
  HEALTH_ALLOW_LOOPBACK=true RUST_LOG=info \
  "$chroot_bin" --userspec=65534:65534 "$root" /bin/sh -c "cd $app && exec ./handler" \
  >"$scratch/handler.log" 2>&1 &
handler_pid=$!
base=http://127.0.0.1:$handler_port

# Sends one request; sets $status and $body. Bounded: 10 s per request.
request() {
  local method=$1 path=$2 data=${3:-}
  local args=(-sS --max-time 10 -o "$scratch/body" -w '%{http_code}' -X "$method")
  [ -z "$data" ] || args+=(-H 'Content-Type: application/json' --data-binary "$data")
  status=$(curl "${args[@]}" "$base$path") || status=000
  body=$(cat "$scratch/body" 2>/dev/null || true)
}
expect() { # expect <status> <what>
  [ "$status" = "$1" ] || fail "$2: expected HTTP $1, got $status: $body"
  echo "    $2: $status $body" | cut -c1-220
}
# Asserts a JavaScript condition over the JSON body ($body as `b`); node is there for Azurite.
expect_json() { # expect_json <condition> <what>
  node -e 'const b = JSON.parse(process.argv[1]); if (!(eval(process.argv[2]))) process.exit(1)' \
    "$body" "$1" || fail "$2: body does not satisfy $1: $body"
}

# The host's readiness poll: GET / until it answers (at most 30 s), failing at once if it exits.
deadline=$((SECONDS + 30))
while :; do
  kill -0 "$handler_pid" 2>/dev/null || { wait "$handler_pid" || true; handler_pid=""; fail "the packaged handler exited in the Debian 11 root"; }
  request GET / 2>/dev/null # refused until it listens
  [ "$status" = 200 ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "GET / did not answer 200 within 30 s (last: $status)"
  sleep 0.1
done
expect 200 "GET / (readiness)"
[ "$body" = '{"status":"ok"}' ] || fail "GET / body: $body"
step "the packaged handler serves on $base from the Debian 11 root (pid $handler_pid)"

name=package-check
type=pkgcheck
request POST /api/ServiceRegistrar \
  "{\"serviceName\":\"$name\",\"serviceType\":\"$type\",\"endpoint\":\"$base/\",\"version\":\"1.2.3\",\"tags\":[\"ci\"]}"
expect 200 "POST /api/ServiceRegistrar"
[ "$body" = "{\"message\":\"Service registered successfully\",\"serviceId\":\"$type:$name\"}" ] ||
  fail "registration body: $body"

request GET "/api/ServiceDiscovery?serviceName=$name"
expect 200 "GET /api/ServiceDiscovery?serviceName=$name"
expect_json "b.count === 1 && b.services.length === 1 && b.services[0].serviceName === '$name'
  && b.services[0].serviceType === '$type' && b.services[0].endpoint === '$base/'
  && b.services[0].version === '1.2.3' && b.services[0].healthStatus === null" "discovery"

# One sweep, as the host's timer trigger sends it: it probes the registration (GET $base/).
request POST /HealthMonitor '{"Data":{"myTimer":{"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}'
expect 200 "POST /HealthMonitor (timer invocation)"
expect_json "b.Logs.some(l => /probed 1, healthy 1, degraded 0, unhealthy 0/.test(l))" "sweep"

request GET "/api/ServiceDiscovery?serviceName=$name&healthyOnly=true"
expect 200 "GET /api/ServiceDiscovery?serviceName=$name&healthyOnly=true"
expect_json "b.count === 1 && b.services[0].serviceName === '$name'
  && b.services[0].healthStatus.status === 'healthy'" "healthy discovery"

# Graceful stop on SIGTERM, as the host stops it: exit status 0.
kill -TERM "$handler_pid"
handler_status=0
wait "$handler_pid" || handler_status=$?
handler_pid=""
[ "$handler_status" = 0 ] || fail "the handler exited with status $handler_status on SIGTERM"
step "registered, discovered, swept healthy, stopped cleanly: the package works on Debian 11"

# --- 5. for the record: a glibc build in the same root ---------------------------------------------
glibc_handler=${GLIBC_HANDLER:-}
if [ -z "$glibc_handler" ]; then
  target_dir=${CARGO_TARGET_DIR:-target}
  for candidate in "$target_dir/release/handler" "$target_dir/debug/handler"; do
    if [ -x "$candidate" ]; then glibc_handler=$candidate; break; fi
  done
fi
if [ -n "$glibc_handler" ] && [ -x "$glibc_handler" ]; then
  cp -- "$glibc_handler" "$root$app/handler-glibc"
  glibc_port=$(free_port)
  glibc_status=0
  glibc_out=$(env -i FUNCTIONS_CUSTOMHANDLER_PORT="$glibc_port" \
    timeout 10 "$chroot_bin" --userspec=65534:65534 "$root" "$app/handler-glibc" 2>&1) || glibc_status=$?
  echo "==> for the record, the glibc build ($glibc_handler) in the same root: exit status $glibc_status"
  printf '%s\n' "$glibc_out" | head -n 5 | sed 's/^/    /'
else
  echo "==> no glibc build found (target/release/handler, target/debug/handler): its failure in the root not shown"
fi

step "check-package.sh: OK"
