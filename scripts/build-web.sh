#!/usr/bin/env bash
# Builds the browser node into web/pkg (node-wasm for wasm32, then wasm-bindgen --target web), so
# that web/ is the whole page: serve it with `weft-bootstrap --web-dir web`.
# Usage: scripts/build-web.sh [--release]
# --release builds the `wasm-release` profile (size-optimised, LTO; hashing and signature crates
# stay at full speed) and shrinks the result with Debian binaryen's `wasm-opt` (docs/BENCHMARKS.md
# has the sizes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh
need_cargo
need_wasm_target
need_wasm_bindgen
profile=debug
flags=()
if [ "${1:-}" = "--release" ]; then
    profile=wasm-release
    flags=(--profile wasm-release)
    need_pkg wasm-opt binaryen
fi
cargo build --quiet -p node-wasm --target wasm32-unknown-unknown "${flags[@]}"
wasm="target/wasm32-unknown-unknown/$profile/node_wasm.wasm"
if [ "$profile" = wasm-release ]; then
    # Before wasm-bindgen, not after: binaryen 108 breaks the externref table wasm-bindgen builds
    # ("WebAssembly.Table.set(): Argument 1 is invalid"). The features are those rustc's wasm32
    # target emits by default.
    mkdir -p target/wasm-opt
    wasm-opt -Os --enable-reference-types --enable-multivalue --enable-bulk-memory --enable-sign-ext \
        --enable-mutable-globals --enable-nontrapping-float-to-int "$wasm" -o target/wasm-opt/node_wasm.wasm
    wasm=target/wasm-opt/node_wasm.wasm
fi
wasm-bindgen --target web --no-typescript --out-dir web/pkg "$wasm"
say "built web/pkg ($profile)"
