#!/usr/bin/env bash
# Fuzzes weft-bootstrap's HTTP API from its own OpenAPI document (/v1/openapi.json) with
# schemathesis: every answer must be documented (status, content type, headers, body schema) and
# none may be a 5xx. Usage: scripts/schemathesis.sh [SECONDS] (default 60). WEFT_BOOTSTRAP_BIN
# names an already built server (the test script passes the one `cargo test` just built).
#
# Records, announcements and names carry Ed25519 signatures that no generator can forge, so the
# "positive data" checks (valid-by-schema input must be accepted) do not apply; everything else does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh
seconds="${1:-60}"
bin="$(need_venv_tool schemathesis schemathesis==4.32.5)"
server="${WEFT_BOOTSTRAP_BIN:-}"
if [ -z "$server" ]; then
    cargo build --quiet -p bootstrap-server
    server=target/debug/weft-bootstrap
fi
dir="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
"$server" --listen 127.0.0.1:0 --data-dir "$dir" --no-stun --rate-limit 0 >"$dir/out" 2>"$dir/log" &
server_pid=$!
for _ in $(seq 100); do grep -q '"ready"' "$dir/out" 2>/dev/null && break; sleep 0.1; done
listen="$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$dir/out")"
[ -n "$listen" ] || { echo "weft-bootstrap did not start:" >&2; cat "$dir/log" >&2; exit 1; }
say "schemathesis against http://$listen for ${seconds}s"
(cd "$dir" && "$OLDPWD/$bin/schemathesis" run "http://$listen/v1/openapi.json" --url "http://$listen" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection \
    --max-time "$seconds" --workers 2 --seed 1 --max-redirects 0 --no-color)
