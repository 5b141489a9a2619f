#!/usr/bin/env bash
# Sets up what a node needs, builds `weft` in release mode, and runs a node with the defaults:
# it finds the other Weft nodes on this LAN by itself. Extra arguments go to `weft run`
# (try --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

need_pkg cc gcc
need_cargo
say "building weft (release)"
cargo build --release --quiet -p node-native --bin weft
exec target/release/weft run "$@"
