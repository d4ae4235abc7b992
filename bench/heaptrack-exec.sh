#!/usr/bin/env bash
# Runs a command under heaptrack in this same process, for BENCH_HANDLER_WRAPPER: the handler keeps
# the pid the benchmark started, so its VmHWM is read and it is stopped as without a wrapper
# (`heaptrack <cmd>` would run it as a child of a shell). Each run writes
# ${HEAPTRACK_OUT:-/tmp/heaptrack.handler}.<pid>.gz; read it with `heaptrack_print -f <file>`
# (or heaptrack_gui). Needs Debian's heaptrack; profiling only, never part of CI.
set -euo pipefail
lib=/usr/lib/heaptrack
[[ -f "${lib}/libheaptrack_preload.so" ]] || { echo "heaptrack-exec.sh: heaptrack is not installed" >&2; exit 1; }
fifo=$(mktemp -u /tmp/heaptrack-fifo.XXXXXX)
mkfifo "${fifo}"
out="${HEAPTRACK_OUT:-/tmp/heaptrack.handler}.$$.gz"
# The interpreter reads what the preloaded library writes, and ends when the handler exits.
( "${lib}/libexec/heaptrack_interpret" < "${fifo}" | gzip -c > "${out}"; rm -f "${fifo}" ) &
LD_PRELOAD="${lib}/libheaptrack_preload.so${LD_PRELOAD:+:${LD_PRELOAD}}" DUMP_HEAPTRACK_OUTPUT="${fifo}" exec "$@"
