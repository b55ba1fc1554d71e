#!/usr/bin/env bash
# python_env.sh — the Python virtual environment the SDK tests (tests/it/sdk_clients.rs) run
# tests/sdk/clients.py in: the official `openai` and `anthropic` SDKs from PyPI, unmodified;
# also the official MCP SDK (`mcp`) that the MCP test peers in tests/mcp/ are written with.
#
#   python_env.sh ensure      create target/sdk-venv (repo root) with tests/sdk/requirements.txt,
#                             or reinstall when that file changed; a fast no-op when up to date.
#                             Prints one line saying what it did.
#   python_env.sh python      print the venv's python path (exit 1 if the venv is not ready)
#
# Needs python3 (3.11+, for numpy 2.3) with the venv module (Debian: python3-venv, installed
# with apt-get when missing and running as root) and access to PyPI (or pip's configured index).
# Override the interpreter with ARES_SDK_PYTHON=/path/to/python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/target/sdk-venv"
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${ARES_SDK_PYTHON:-python3}"

log() { printf 'python_env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

requirements_hash() {
    # The interpreter's version is part of the key: a new python3 means a fresh venv.
    { cat "$REQUIREMENTS"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$1" ] \
        && cmp -s "$REQUIREMENTS" "$VENV/requirements.txt" \
        && "$VENV/bin/python" -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("openai", "anthropic", "numpy", "mcp")))' >/dev/null 2>&1
}

apt_install_venv() {
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    local version
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    log "the venv module is missing: installing python3-venv with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python$version-venv" >&2 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python$version-venv" >&2; }
}

make_venv() {
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$PYTHON" -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        apt_install_venv || die "'$PYTHON -m venv' failed; install the venv module (Debian: python3-venv)"
        "$PYTHON" -m venv "$VENV" >&2 || die "'$PYTHON -m venv' failed"
    fi
}

ensure() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python 3 (or set ARES_SDK_PYTHON)"
    [ -f "$REQUIREMENTS" ] || die "missing $REQUIREMENTS"
    local want
    want="$(requirements_hash)"
    if up_to_date "$want"; then
        echo "python_env: $VENV is up to date"
        return 0
    fi
    local t0=$SECONDS what="created"
    [ -d "$VENV" ] && what="reinstalled"
    make_venv
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS" >&2; then
        rm -rf "$VENV"
        die "pip install -r $REQUIREMENTS failed (is PyPI reachable?)"
    fi
    # The tests compare this copy with requirements.txt to tell a stale venv from a current one.
    cp "$REQUIREMENTS" "$VENV/requirements.txt"
    echo "$want" >"$STAMP"
    local versions
    versions="$("$VENV/bin/python" -c 'import importlib.metadata as md, openai, anthropic, numpy, mcp
print(f"openai {openai.__version__}, anthropic {anthropic.__version__}, numpy {numpy.__version__}, mcp", md.version("mcp"))')"
    echo "python_env: $what $VENV ($versions) in $((SECONDS - t0))s"
}

cmd_python() {
    [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] || die "no venv at $VENV (run: $0 ensure)"
    echo "$VENV/bin/python"
}

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

case "${1:-}" in
    ensure) ensure ;;
    python) cmd_python ;;
    *)      usage ;;
esac
