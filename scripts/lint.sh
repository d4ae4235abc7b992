#!/usr/bin/env bash
# Formatting and lints, as required before every commit: Rust (rustfmt, clippy), the dependency
# rules, and shellcheck over every shell script.
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
# npm must not record download URLs in the lockfile.
if grep -q '"resolved"' package-lock.json; then
  echo "error: package-lock.json records download URLs; regenerate it (see .npmrc)" >&2
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
