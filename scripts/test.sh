#!/usr/bin/env bash
# The whole test suite: unit tests beside the code, and the integration suite in tests/, which starts
# its own Azurite (from node_modules, installed here from package-lock.json) and the real handler
# binary, and imitates the Functions host. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need cargo "install Rust with rustup"
ensure_azurite
cargo test --locked --all-targets "$@"
