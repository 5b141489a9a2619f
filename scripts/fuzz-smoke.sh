#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target of node-core for a fixed time each.
#
#   scripts/fuzz-smoke.sh [SECONDS]     # SECONDS per target, default 60
#
# Installs cargo-fuzz if it is missing. Builds on the stable toolchain with RUSTC_BOOTSTRAP=1
# (cargo fuzz needs nightly-only flags such as -Zsanitizer). The sanitizer defaults to address;
# set FUZZ_SANITIZER=none to build without one. Exits non-zero if any target finds a crash,
# leaving the crashing input under node-core/fuzz/artifacts/<target>/. See docs/FUZZING.md.
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]  (a positive whole number of seconds per target)" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(frame_decoder message_decode announcement_decode envelope_open)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root/node-core/fuzz"

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1

echo "==> building fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    echo "==> fuzzing $t for ${secs}s"
    if cargo fuzz run --sanitizer "$sanitizer" "$t" -- -max_total_time="$secs"; then
        echo "==> $t: no crashes"
    else
        echo "==> $t: FAILED (crash input, if any, is in node-core/fuzz/artifacts/$t/)" >&2
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz smoke: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz smoke: all ${#targets[@]} targets ran ${secs}s each with no crashes"
