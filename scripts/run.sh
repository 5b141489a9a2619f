#!/usr/bin/env bash
# Sets up what a node needs, builds the page and `weft` in release mode, and runs a node with the
# defaults: it finds the other Weft nodes on this LAN by itself, and serves the page on port 8480
# (open http://<this host>:8480/ in a browser on the LAN to join from there). Extra arguments go
# to `weft run` (try --help); pass your own --http ADDR to serve elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

need_pkg cc gcc
need_cargo
need_wasm_target
need_wasm_bindgen
say "building the page (release; weft carries it inside)"
bash scripts/build-web.sh --release
say "building weft (release)"
cargo build --release --quiet -p node-native --bin weft
http=(--http 0.0.0.0:8480)
for arg in "$@"; do
    case "$arg" in --http|--http=*) http=() ;; esac
done
exec target/release/weft run "${http[@]}" "$@"
