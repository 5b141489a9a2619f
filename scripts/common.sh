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

# need_service_pkg COMMAND PACKAGE SERVICE: like need_pkg, for a package that ships a daemon the
# tests do not want running (e.g. coturn's TURN server): it is installed without being started,
# and disabled where systemd would start it at boot.
need_service_pkg() {
    command -v "$1" >/dev/null 2>&1 && return 0
    local guard=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$guard" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null && as_root chmod +x "$guard" && added=1
    fi
    need_pkg "$1" "$2"
    if [ "$added" -eq 1 ]; then as_root rm -f "$guard"; fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now "$3" >/dev/null 2>&1 || true
    fi
}

# need_venv_tool NAME PIP_SPEC: a Python tool in its own venv under target/tools/NAME (from PyPI);
# prints the venv's bin directory.
need_venv_tool() {
    local venv="target/tools/$1"
    if [ ! -x "$venv/bin/$1" ]; then
        need_pkg python3 python3
        python3 -c "import ensurepip" >/dev/null 2>&1 || need_pkg_force python3-venv
        say "installing $2 into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q "$2" >&2
    fi
    echo "$venv/bin"
}

# need_pkg_force PACKAGE: installs a Debian package that provides no command to check for.
need_pkg_force() {
    if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

# wasm-bindgen-cli at exactly the version node-wasm pins (the CLI must match the library).
need_wasm_bindgen() {
    local want
    want="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' node-wasm/Cargo.toml)"
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
        say "installing wasm-bindgen-cli $want (cargo install)"
        cargo install --quiet wasm-bindgen-cli --version "$want"
    fi
}

# Node.js and npm, from Debian when missing.
need_npm() {
    need_pkg node nodejs
    need_pkg npm npm
}
