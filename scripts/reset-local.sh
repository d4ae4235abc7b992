#!/usr/bin/env bash
# `make reset`: deletes the dev loop's Azurite data (.azurite/), so the next `make run` starts with
# empty tables instead of bringing back every row of earlier sessions. Refuses while `make run` is
# running (its pid file in .azurite/ names a live run-local.sh, or Azurite's port is taken), since
# Azurite would keep writing into what is being deleted. Touches nothing but .azurite/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

data_dir="$REPO_ROOT/.azurite"
if [ ! -e "$data_dir" ]; then
  echo "nothing to reset: .azurite/ does not exist"
  exit 0
fi
if [ -L "$data_dir" ] || [ ! -d "$data_dir" ]; then
  echo "error: .azurite is not a plain directory; not deleting it" >&2
  exit 1
fi
pid=$(cat "$data_dir/run-local.pid" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs run-local.sh "/proc/$pid/cmdline"; then
  echo "error: make run is running (scripts/run-local.sh, pid $pid); stop it with Ctrl-C, then make reset" >&2
  exit 1
fi
if port_in_use 10002; then
  echo "error: something listens on 127.0.0.1:10002 (an Azurite using .azurite/?); stop it, then make reset" >&2
  exit 1
fi
rm -rf -- "$data_dir"
echo "deleted .azurite/: the next make run starts with empty tables"
