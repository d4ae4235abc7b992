#!/usr/bin/env bash
# Formatting and lints, as required before every commit: Rust (rustfmt, clippy), the dependency
# rules, Azurite started without telemetry everywhere, and shellcheck over every shell script.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# The binary must not need OpenSSL on the Functions image: rustls only.
if cargo tree --locked -i openssl-sys >/dev/null 2>&1; then
  echo "error: openssl-sys is in the dependency tree; use the crates' rustls features" >&2
  exit 1
fi
# Imports point one way, from the edge inwards: a lower layer never names a higher one
# (docs/architecture.md, "Layers"). Each line: a layer's files, and the modules their code (comments
# aside) must not name.
layer_rules=(
  "src/metrics.rs|[a-z_]+"
  "src/domain|api|host|health|security|startup|sweep_job|connector|store|identity|configuration|metrics|serve|error|telemetry"
  "src/store|api|host|health|security|startup|sweep_job|connector|metrics|serve|error"
  "src/identity.rs src/identity|api|host|health|security|startup|sweep_job|connector|store|metrics|serve|error"
  "src/serve.rs|api|host|health|security|startup|sweep_job|connector|store|metrics|error"
  "src/health|api|host|security|startup|sweep_job|connector"
  "src/connector|api|host|health|security|startup|sweep_job|metrics|error"
  "src/configuration|api|host|health|security|startup|sweep_job|connector|store|identity|metrics|serve|error|telemetry"
)
# shellcheck disable=SC2086 # the first field is a list of paths
upward="$(for rule in "${layer_rules[@]}"; do grep -rnE "crate::(${rule#*|})\b" ${rule%%|*} || true; done \
  | grep -vE '^[^:]+:[0-9]+:\s*//' || true)"
if [ -n "$upward" ]; then
  printf 'error: a lower layer imports a higher one (docs/architecture.md, "Layers"):\n%s\n' "$upward" >&2
  exit 1
fi
# docs/architecture.md's file map names every source file.
unmapped="$(find src -name '*.rs' | sort | while read -r file; do
  grep -qF "\`$file\`" docs/architecture.md || echo "$file"
done)"
if [ -n "$unmapped" ]; then
  printf 'error: docs/architecture.md ("Files") does not list:\n%s\n' "$unmapped" >&2
  exit 1
fi
# npm must not record download URLs in the lockfile.
if grep -q '"resolved"' package-lock.json; then
  echo "error: package-lock.json records download URLs; regenerate it (see .npmrc)" >&2
  exit 1
fi
# Every Azurite the project starts passes --disableTelemetry: without it Azurite sends usage data
# off the machine, and a local run talks to loopback only. A start is a command naming Azurite's
# executable: in shell "$AZURITE_TABLE", azurite* or a path ending in /azurite* as the command
# word; in Python the AZURITE constant used, or a string naming azurite* in a spawn/run/Popen call;
# in JavaScript such a string in a spawn/exec call; in Rust azurite_bin() or a Command naming
# azurite. The flag must be in that command: up to its last continuation line (shell), its closing
# bracket (Python, JavaScript), or the line that spawns it (Rust, whose arguments are builder calls).
# shellcheck disable=SC2016 # an awk program: its $ is awk's
telemetry="$(find scripts bench tests infra .ci -type f \
  \( -name '*.sh' -o -name '*.py' -o -name '*.js' -o -name '*.rs' -o -path .ci/run \) -print0 \
  | sort -z | xargs -0 awk '
  function launches(kind, text,    named) {
    named = "[\"\047`](npx[ \t]+)?([^\"\047` \t]*/)?azurite(-table|-blob|-queue)?[\"\047` ]"
    if (kind == "rs")
      return (text ~ /azurite_bin\(\)/ && text !~ /fn azurite_bin/) \
        || text ~ /(Command::new|clean_command)\(.*[Aa]zurite/
    if (kind == "py")
      return (text ~ /(^|[^A-Za-z0-9_])AZURITE([^A-Za-z0-9_]|$)/ && text !~ /^[ \t]*AZURITE[ \t]*=/) \
        || (text ~ /(spawn|run|Popen|call|check_output)\(/ && text ~ named)
    if (kind == "js")
      return text ~ /(spawn|spawnSync|exec|execSync|execFile|execFileSync|fork)\(/ && text ~ named
    return text ~ /(^|[;&|(`]|(^|[ \t])(then|do|else|exec|nohup|npx|time|command|setsid|env))[ \t]*"?(\$\{?AZURITE[A-Z_]*\}?|[^ \t";&|]*\/azurite(-table|-blob|-queue)?|azurite(-table|-blob|-queue)?)"?([ \t]|$)/
  }
  function close_launch() {
    if (open && !seen) print file ":" line
    open = 0
  }
  FNR == 1 { close_launch() }
  {
    text = $0
    if (text ~ /^[ \t]*(#|\/\/)/) next
    kind = FILENAME ~ /\.rs$/ ? "rs" : FILENAME ~ /\.py$/ ? "py" : FILENAME ~ /\.js$/ ? "js" : "sh"
    if (!open && launches(kind, text)) { open = 1; seen = 0; depth = 0; file = FILENAME; line = FNR }
    if (!open) next
    if (index(text, "--disableTelemetry")) seen = 1
    depth += gsub(/[([{]/, "&", text) - gsub(/[])}]/, "&", text)
    if (kind == "sh" ? text !~ /\\[ \t]*$/ : kind == "rs" ? text ~ /spawn/ : depth <= 0) close_launch()
  }
  END { close_launch() }
')"
if [ -n "$telemetry" ]; then
  printf 'error: Azurite started without --disableTelemetry (it would send usage data off the machine):\n%s\n' \
    "$telemetry" >&2
  exit 1
fi
# Every shell script: scripts/, infra/*.sh and CI's entry point. Pinned shellcheck (scripts/lib.sh),
# configured by .shellcheckrc; all severities, so style findings fail too.
# The same upstream version from elsewhere (e.g. not Debian) will do; otherwise Debian's, pinned.
if [ "$(shellcheck --version 2>/dev/null | sed -n 's/^version: //p')" != "${DEB_SHELLCHECK%-*}" ]; then
  ensure_deb "shellcheck=$DEB_SHELLCHECK"
fi
echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
shellcheck scripts/*.sh infra/*.sh .ci/run
