#!/usr/bin/env bash
# The page in a real browser: builds web/pkg, installs playwright-core (npm) and Debian's
# chromium if missing, and runs web/tests against the page as weft-bootstrap and `weft --http`
# serve it.
# Usage: scripts/web-test.sh [PATH/TO/weft-bootstrap PATH/TO/weft] (default: builds debug ones).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh
server="${1:-}"
weft="${2:-}"
need_pkg chromium chromium
need_service_pkg mosquitto mosquitto mosquitto
need_npm
# The page first: `weft` builds it into its binary.
bash scripts/build-web.sh
if [ -z "$server" ] || [ -z "$weft" ]; then
    cargo build --quiet -p bootstrap-server -p node-native
    server=target/debug/weft-bootstrap
    weft=target/debug/weft
fi
if [ ! -d web/tests/node_modules/playwright-core ]; then
    say "installing playwright-core (npm; the browser is Debian's chromium, never downloaded)"
    (cd web/tests && npm install --no-package-lock --no-audit --no-fund --silent)
fi
# A hung test must fail, not eat the CI budget: each file gets a hard limit.
timeout --kill-after=10 300 node web/tests/page.test.mjs "$server"
timeout --kill-after=10 600 node web/tests/mesh.test.mjs "$server" "$weft"
timeout --kill-after=10 600 node web/tests/serverless.test.mjs "$weft"
timeout --kill-after=10 300 node web/tests/mqtt.test.mjs "$server" "$weft"
