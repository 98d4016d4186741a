#!/usr/bin/env bash
# Builds ferronn's release artifacts into dist/ (or the folder given as $1):
#   - one abi3 wheel for every CPython >= 3.9, tagged manylinux2014 (glibc >= 2.17): maturin
#     links the extension with zig against glibc 2.17's symbols, so no newer symbol can slip in;
#   - the sdist (what `pip install` compiles where no wheel fits).
# Needs: maturin and zig (`pip install maturin ziglang`; the zig from PyPI's ziglang package is
# used when no `zig` is on PATH). Cargo.lock is honoured (--locked) and file times inside the
# archives come from SOURCE_DATE_EPOCH (default: the last commit's time), so a rebuild of the
# same commit with the same toolchain gives the same archives.
# CARGO_TARGET_DIR is honoured: the test suite points it at ./target to share compiled crates.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
mkdir -p "$out"

if ! command -v zig >/dev/null 2>&1; then
    # maturin looks for a `zig` executable; PyPI's ziglang ships one inside the module.
    zig_bin="$(python -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
    shim="$(mktemp -d)"
    trap 'rm -rf "$shim"' EXIT
    ln -s "$zig_bin" "$shim/zig"
    export PATH="$shim:$PATH"
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 315532800)"
fi
export SOURCE_DATE_EPOCH

maturin build --release --locked --zig --compatibility manylinux2014 --out "$out"
maturin sdist --out "$out"
ls -l "$out"
