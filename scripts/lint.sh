#!/usr/bin/env bash
# Formatting and lints, as required before every commit.
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
