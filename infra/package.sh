#!/usr/bin/env bash
# Builds the `handler` binary and assembles the ONE deployment zip for the Function App:
#
#   dist/registry-app.zip
#     host.json
#     ServiceRegistrar/function.json
#     ServiceDiscovery/function.json
#     ServiceHeartbeat/function.json
#     ServiceResolver/function.json
#     HealthMonitor/function.json
#     Sweep/function.json
#     OpenApi/function.json
#     Dashboard/function.json
#     ConsulApi/function.json
#     ProbeShard/function.json
#     handler                         (static Linux x86-64 executable, mode 0755)
#
# Zip deploy replaces the whole app, so everything must travel in this single package
# (the original recipe's three separate zips overwrote each other and two lacked host.json).
#
# The handler is built for x86_64-unknown-linux-musl: one static executable, with musl's libc
# inside it, so it starts whatever glibc the host image has. The Functions Linux images for v4
# are largely Debian 11 (glibc 2.31) and the custom-handler stack does not name its image, while a
# glibc build on this machine (Debian 12) needs GLIBC_2.34 and fails there at load time
# (scripts/check-package.sh shows both in a Debian 11 root). Why musl rather than a glibc build
# against an old floor (cargo zigbuild, glibc 2.17/2.28): it is what Microsoft's own Rust
# custom-handler quickstart builds; it needs only the Rust target (rustup) and Debian's musl-tools
# (musl-gcc, for ring's C code), no second compiler toolchain; and a static binary assumes nothing
# about the image, not even a floor. Local runs and the tests keep the faster glibc build.
#
# Usage: infra/package.sh            (from any directory)
# Environment (all optional):
#   SKIP_BUILD=1            package the binary already built instead of running cargo
#   HANDLER_TARGET=<triple> build for another Rust target instead of x86_64-unknown-linux-musl;
#                           `host` packages the plain `cargo build --release` binary (dynamically
#                           linked against this machine's glibc: not portable, see above)
# What the default needs is installed here when missing: the Rust target (rustup target add) and,
# as root, Debian's musl-tools at the version pinned in scripts/lib.sh (apt-get).
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "${script_dir}/.." && pwd)"
cd "${repo_root}"
source "${script_dir}/../scripts/lib.sh"

dist_dir="${repo_root}/dist"
zip_path="${dist_dir}/registry-app.zip"
handler_target="${HANDLER_TARGET:-x86_64-unknown-linux-musl}"

die() {
    echo "package.sh: error: $*" >&2
    exit 1
}

# --- 1. build --------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-${repo_root}/target}"
case "${target_dir}" in
    /*) ;;
    *) target_dir="${repo_root}/${target_dir}" ;;
esac

build_args=(build --release --locked --bin handler)
if [[ "${handler_target}" == "host" ]]; then
    if [[ "$(uname -s)" != "Linux" || "$(uname -m)" != "x86_64" ]]; then
        die "this machine is $(uname -s)/$(uname -m); the Function App needs a Linux x86-64 binary: leave HANDLER_TARGET unset"
    fi
    handler_bin="${target_dir}/release/handler"
else
    build_args+=(--target "${handler_target}")
    handler_bin="${target_dir}/${handler_target}/release/handler"
fi

# The Rust standard library for the target, and a C compiler for it: ring compiles C and
# assembly, and the cc crate looks for x86_64-linux-musl-gcc, then musl-gcc (Debian's musl-tools).
ensure_target_toolchain() {
    local target=$1
    [[ "${target}" == host ]] && return 0
    if ! rustc --print target-libdir --target "${target}" 2>/dev/null | xargs -I{} test -d {}; then
        command -v rustup >/dev/null 2>&1 || die "the Rust standard library for ${target} is missing and rustup is not installed to add it"
        echo "==> rustup target add ${target}"
        rustup target add "${target}"
    fi
    if [[ "${target}" == x86_64-unknown-linux-musl ]]; then
        local cc_var="CC_${target//-/_}"
        if [[ -z "${!cc_var:-}${TARGET_CC:-}" ]] \
            && ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1 \
            && ! command -v musl-gcc >/dev/null 2>&1; then
            ensure_deb "musl-tools=${DEB_MUSL_TOOLS}"
        fi
    fi
}

if [[ "${SKIP_BUILD:-0}" == "1" ]]; then
    echo "==> SKIP_BUILD=1: using the existing ${handler_bin#"${repo_root}"/}"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or set SKIP_BUILD=1 with a prebuilt binary)"
    ensure_target_toolchain "${handler_target}"
    echo "==> cargo ${build_args[*]}"
    cargo "${build_args[@]}"
fi

# --- 2. verify the inputs --------------------------------------------------------------------
app_files=(
    host.json
    ServiceRegistrar/function.json
    ServiceDiscovery/function.json
    ServiceHeartbeat/function.json
    ServiceResolver/function.json
    HealthMonitor/function.json
    Sweep/function.json
    OpenApi/function.json
    Dashboard/function.json
    ConsulApi/function.json
    ProbeShard/function.json
)
for f in "${app_files[@]}"; do
    [[ -f "${repo_root}/${f}" ]] || die "missing ${f} at the repository root"
    [[ -s "${repo_root}/${f}" ]] || die "${f} is empty"
done
[[ -f "${handler_bin}" ]] || die "missing the handler binary at ${handler_bin}"

# ELF magic (7f 45 4c 46) and e_machine 0x3e (x86-64), read without needing `file`.
magic="$(od -An -tx1 -N4 "${handler_bin}" 2>/dev/null | tr -d ' \n' || true)"
[[ "${magic}" == "7f454c46" ]] || die "${handler_bin} is not an ELF executable"
machine="$(od -An -tx1 -j18 -N2 "${handler_bin}" 2>/dev/null | tr -d ' \n' || true)"
[[ "${machine}" == "3e00" ]] || die "${handler_bin} is not an x86-64 binary (e_machine=${machine:-unknown})"

# What the binary needs from the host image, so a mismatch shows here rather than as a host
# start-up failure in Azure. A musl build must be static: no program interpreter, no shared
# libraries (readelf comes with binutils, which the C toolchain the build needs brings).
if command -v readelf >/dev/null 2>&1; then
    interpreter="$(readelf -lW "${handler_bin}" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
    needed="$(readelf -dW "${handler_bin}" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
    if [[ -z "${interpreter}${needed}" ]]; then
        echo "==> handler is statically linked: needs nothing from the host image"
    else
        [[ "${handler_target}" != *-musl ]] || die "the ${handler_target} build is not static (interpreter ${interpreter:-none}, libraries ${needed:-none})"
        glibc_needed="$(objdump -T "${handler_bin}" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1 || true)"
        echo "==> handler is dynamically linked (${interpreter}; ${needed% }); needs ${glibc_needed:-an unknown glibc} or newer on the host image"
    fi
elif [[ "${handler_target}" == *-musl ]]; then
    die "readelf (binutils) is needed to check that the ${handler_target} build is static"
fi

# --- 3. stage ----------------------------------------------------------------------------------
stage="$(mktemp -d "${TMPDIR:-/tmp}/registry-app.XXXXXX")"
trap 'rm -rf -- "${stage}"' EXIT

for f in "${app_files[@]}"; do
    mkdir -p "${stage}/$(dirname -- "${f}")"
    cp -- "${repo_root}/${f}" "${stage}/${f}"
    chmod 0644 "${stage}/${f}"
done
cp -- "${handler_bin}" "${stage}/handler"
chmod 0755 "${stage}/handler"

entries=("${app_files[@]}" handler)

# --- 4. zip ------------------------------------------------------------------------------------
mkdir -p "${dist_dir}"
rm -f -- "${zip_path}" # zip would otherwise update an old archive in place

if command -v zip >/dev/null 2>&1; then
    echo "==> zip (Info-ZIP) -> ${zip_path#"${repo_root}"/}"
    # -X: no extra attributes beyond the Unix mode; -q: quiet. Paths are relative to the stage,
    # so every entry sits at the zip root exactly as the Functions host expects.
    (cd -- "${stage}" && zip -X -q "${zip_path}" "${entries[@]}")
elif command -v python3 >/dev/null 2>&1; then
    echo "==> python3 zipfile -> ${zip_path#"${repo_root}"/}"
    python3 - "${stage}" "${zip_path}" "${entries[@]}" <<'PY'
import os
import shutil
import stat
import sys
import zipfile

stage, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for name in names:
        path = os.path.join(stage, name)
        info = zipfile.ZipInfo.from_file(path, arcname=name)
        info.compress_type = zipfile.ZIP_DEFLATED
        # Unix mode in the high 16 bits; create_system 3 (Unix) so extractors honour it.
        mode = 0o755 if name == "handler" else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.create_system = 3
        with open(path, "rb") as src, zf.open(info, "w") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
PY
else
    die "neither zip nor python3 is available to build the archive"
fi

# --- 5. check and list -------------------------------------------------------------------------
if command -v python3 >/dev/null 2>&1; then
    python3 - "${zip_path}" "${entries[@]}" <<'PY'
import stat
import sys
import zipfile

out, expected = sys.argv[1], sys.argv[2:]
with zipfile.ZipFile(out) as zf:
    bad = zf.testzip()
    if bad is not None:
        sys.exit(f"package.sh: error: corrupt entry {bad} in {out}")
    infos = [i for i in zf.infolist() if not i.is_dir()]
    names = sorted(i.filename for i in infos)
    if names != sorted(expected):
        sys.exit(f"package.sh: error: zip holds {names}, expected {sorted(expected)}")
    print(f"{'mode':<11} {'size':>10}  name")
    for i in infos:
        mode = (i.external_attr >> 16) & 0xFFFF
        print(f"{stat.filemode(mode):<11} {i.file_size:>10}  {i.filename}")
        if i.filename == "handler" and not mode & 0o111:
            sys.exit("package.sh: error: handler lost its executable bit in the zip")
PY
elif command -v zipinfo >/dev/null 2>&1; then
    zipinfo "${zip_path}"
else
    unzip -l "${zip_path}"
fi

echo "==> wrote ${zip_path#"${repo_root}"/} ($(wc -c <"${zip_path}" | tr -d ' ') bytes)"
