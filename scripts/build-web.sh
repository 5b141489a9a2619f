#!/usr/bin/env bash
# Builds the browser node into web/pkg (node-wasm for wasm32, then wasm-bindgen --target web), so
# that web/ is the whole page: serve it with `weft-bootstrap --web-dir web`.
# Usage: scripts/build-web.sh [--release]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh
need_cargo
need_wasm_target
need_wasm_bindgen
profile=debug
flags=()
if [ "${1:-}" = "--release" ]; then profile=release; flags=(--release); fi
cargo build --quiet -p node-wasm --target wasm32-unknown-unknown "${flags[@]}"
wasm-bindgen --target web --no-typescript --out-dir web/pkg "target/wasm32-unknown-unknown/$profile/node_wasm.wasm"
say "built web/pkg ($profile)"
