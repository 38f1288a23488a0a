#!/usr/bin/env bash
# Builds shortlist's WebAssembly module (crates/wasm: retrieval + exact index +
# ranking + the pipeline, no threads, no C++) and its JavaScript glue:
#
#   scripts/wasm/build.sh [OUT]        # OUT defaults to target/wasm-pkg
#   scripts/wasm/build.sh --module-only # compiles the module, no glue (CI's wasm32
#                                       # step: the demo test's build then reuses it)
#
# writes OUT/shortlist_wasm.js and OUT/shortlist_wasm_bg.wasm, which
# `shortlist serve` serves under /demo/ (it looks in target/wasm-pkg, or in
# $SHORTLIST_DEMO_WASM_DIR). Needs:
#   rustup target add wasm32-unknown-unknown
#   cargo install wasm-bindgen-cli --version <the wasm-bindgen version pinned in
#     crates/wasm/Cargo.toml>   (the glue must come from the same version)
# both done here when missing. The module is built with WebAssembly SIMD
# (simd128, in every current browser) into its own target directory
# (target/wasm), so the native build is untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODULE_ONLY=0
if [ "${1:-}" = --module-only ]; then
    MODULE_ONLY=1
    shift
fi
OUT=${1:-target/wasm-pkg}
VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' crates/wasm/Cargo.toml)
if [ -z "$VERSION" ]; then
    echo "error: no exact wasm-bindgen version (=X.Y.Z) in crates/wasm/Cargo.toml" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
if [ "$MODULE_ONLY" = 0 ] && { ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | cut -d' ' -f2)" != "$VERSION" ]; }; then
    echo "installing wasm-bindgen-cli $VERSION (the version of the wasm-bindgen crate)" >&2
    cargo install wasm-bindgen-cli --version "$VERSION"
fi
export CARGO_TARGET_DIR=target/wasm
RUSTFLAGS="-C target-feature=+simd128" \
    cargo build --release --target wasm32-unknown-unknown -p shortlist-wasm
[ "$MODULE_ONLY" = 0 ] || exit 0
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" \
    target/wasm/wasm32-unknown-unknown/release/shortlist_wasm.wasm
ls -l "$OUT"
