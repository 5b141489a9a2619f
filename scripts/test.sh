#!/usr/bin/env bash
# Sets up everything the test suite needs on a Debian machine and runs the whole suite:
# formatting, lints, the wasm32 build of node-core, its dependency rule, a fuzz smoke run, and
# every test (the simulator, real processes on loopback, and — as root — real LAN discovery
# between network namespaces and NAT traversal in the NAT lab, STUN against coturn's client, MQTT
# signaling through Debian's mosquitto), then schemathesis against the bootstrap server's API.
# Under CI=true the namespace and broker tests fail instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

# A clean CI checkout builds everything once: incremental caches would only take disk (over a
# gigabyte) that the 200 MiB transfer test needs.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi

need_pkg cc gcc
need_pkg ip iproute2
need_pkg sysctl procps
need_pkg nft nftables
need_service_pkg turnutils_stunclient coturn coturn
need_service_pkg mosquitto mosquitto mosquitto
need_service_pkg miniupnpd miniupnpd-nftables miniupnpd
need_pkg chromium chromium
need_npm
need_cargo
need_wasm_target

say "the page (web/pkg), first: weft builds it into its binary"
bash scripts/build-web.sh

say "cargo fmt --check"
cargo fmt --all --check

say "clippy (warnings are errors; node-core's clippy.toml forbids clocks, thread RNGs and sockets)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

say "node-core builds for wasm32-unknown-unknown"
cargo build --quiet -p node-core --target wasm32-unknown-unknown

say "node-core's dependency tree has no tokio (or any other IO runtime)"
if cargo tree -p node-core -e normal --target all --prefix none | grep -E '^(tokio|mio|async-std|socket2) '; then
    echo "node-core must stay sans-IO" >&2
    exit 1
fi

say "fuzz smoke (${FUZZ_SECONDS:-10}s per target; docs/FUZZING.md has the 60 s command)"
bash scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-10}"

say "tests"
cargo test --workspace

say "the page in Debian's chromium (playwright-core)"
bash scripts/web-test.sh target/debug/weft-bootstrap target/debug/weft

say "schemathesis against weft-bootstrap's OpenAPI document (${SCHEMATHESIS_SECONDS:-120}s)"
WEFT_BOOTSTRAP_BIN=target/debug/weft-bootstrap bash scripts/schemathesis.sh "${SCHEMATHESIS_SECONDS:-120}"
