#!/usr/bin/env bash
# The browser benchmarks (docs/BENCHMARKS.md): the page's wasm bundle size, then data-channel
# throughput page ↔ native against page ↔ page. Builds the release page and `weft` first.
# Usage: scripts/bench-web.sh   (env: RUNS=3 rounds, MIB=64 per transfer)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh
need_pkg chromium chromium
need_pkg gzip gzip
need_npm
bash scripts/build-web.sh --release
cargo build --release --quiet -p node-native --bin weft
if [ ! -d web/tests/node_modules/playwright-core ]; then
    (cd web/tests && npm install --no-package-lock --no-audit --no-fund --silent)
fi
say "bundle size (release page, as served)"
total_raw=0
total_gz=0
for f in web/pkg/node_wasm_bg.wasm web/pkg/node_wasm.js web/*.js web/index.html web/style.css; do
    raw=$(wc -c <"$f")
    gz=$(gzip -9 -c "$f" | wc -c)
    total_raw=$((total_raw + raw))
    total_gz=$((total_gz + gz))
    printf '%-28s %8d bytes raw %8d gzipped\n' "$f" "$raw" "$gz"
done
printf '%-28s %8d bytes raw %8d gzipped (%d KiB)\n' total "$total_raw" "$total_gz" $((total_gz / 1024))
say "data-channel throughput"
node web/tests/datachannel.bench.mjs target/release/weft
