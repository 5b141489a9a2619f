# Shared set-up steps for scripts/run.sh and scripts/test.sh: each installs what is missing and
# skips what is there. Sourced, not run.

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf '==> %s\n' "$*"; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "need root to run: $*" >&2; return 1
    fi
}

apt_updated=0
# need_pkg COMMAND PACKAGE: installs the Debian package when the command is missing.
need_pkg() {
    command -v "$1" >/dev/null 2>&1 && return 0
    say "installing $2 (for $1)"
    if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# A Rust toolchain: the machine's rustup one, else Debian's rustup package.
need_cargo() {
    if command -v cargo >/dev/null 2>&1; then return 0; fi
    need_pkg rustup rustup
    rustup default stable
}

need_wasm_target() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        say "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}
