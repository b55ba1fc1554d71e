#!/usr/bin/env bash
# node_env.sh — the npm MCP servers that the MCP tests run ARES against: the official
# `@modelcontextprotocol/server-filesystem` from npm, unmodified, at the exact version pinned in
# tests/mcp/package.json and tests/mcp/package-lock.json.
#
#   node_env.sh ensure              install them into target/mcp-node (repo root) with `npm ci`,
#                                   or reinstall when package.json / package-lock.json changed;
#                                   a fast no-op when up to date. Prints one line saying what it did.
#   node_env.sh server-filesystem   print the absolute path of the filesystem server's JS entry
#                                   point (run it as: node <path> <allowed dir>...; no npx, no
#                                   network); exit 1 if not installed
#   node_env.sh path                the same as server-filesystem
#   node_env.sh dir                 print the install directory (exit 1 if not installed)
#
# Needs node (20+) and npm on PATH and access to the npm registry (or npm's configured one).
# Regenerate the lock file after changing package.json: cd tests/mcp && npm install --no-audit
# --no-fund --package-lock-only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DIR="$ROOT/target/mcp-node"
STAMP="$DIR/.install.sha256"
FS_PACKAGE="@modelcontextprotocol/server-filesystem"

log() { printf 'node_env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

install_hash() {
    # node's version is part of the key: a new node means a fresh install.
    { cat "$HERE/package.json" "$HERE/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$1" ] \
        && cmp -s "$HERE/package.json" "$DIR/package.json" \
        && cmp -s "$HERE/package-lock.json" "$DIR/package-lock.json" \
        && [ -f "$DIR/node_modules/$FS_PACKAGE/package.json" ]
}

# The entry point named by the package's `bin`, as an absolute path.
fs_entry() {
    local pkg="$DIR/node_modules/$FS_PACKAGE"
    [ -f "$pkg/package.json" ] || return 1
    local rel
    rel="$(node -e '
const p = require(process.argv[1]);
const bin = typeof p.bin === "string" ? p.bin : (p.bin && (p.bin["mcp-server-filesystem"] || Object.values(p.bin)[0]));
if (!bin) process.exit(1);
process.stdout.write(bin);' "$pkg/package.json")" || return 1
    (cd "$pkg" && realpath -e "$rel")
}

ensure() {
    command -v node >/dev/null 2>&1 || die "node not found; install Node.js 20+"
    command -v npm >/dev/null 2>&1 || die "npm not found; install npm"
    local want
    want="$(install_hash)"
    if up_to_date "$want"; then
        echo "node_env: $DIR is up to date"
        return 0
    fi
    local t0=$SECONDS what="created"
    [ -d "$DIR" ] && what="reinstalled"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
    if ! (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2); then
        rm -rf "$DIR"
        die "npm ci in $DIR failed (is the npm registry reachable?)"
    fi
    fs_entry >/dev/null || { rm -rf "$DIR"; die "$FS_PACKAGE installed without its entry point"; }
    echo "$want" >"$STAMP"
    local version
    version="$(node -p 'require(process.argv[1]).version' "$DIR/node_modules/$FS_PACKAGE/package.json")"
    echo "node_env: $what $DIR ($FS_PACKAGE $version, node $(node --version)) in $((SECONDS - t0))s"
}

cmd_server_filesystem() {
    [ -f "$STAMP" ] || die "nothing installed in $DIR (run: $0 ensure)"
    fs_entry || die "$FS_PACKAGE is not installed in $DIR (run: $0 ensure)"
}

cmd_dir() {
    [ -f "$STAMP" ] || die "nothing installed in $DIR (run: $0 ensure)"
    echo "$DIR"
}

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

case "${1:-}" in
    ensure)            ensure ;;
    server-filesystem|path) cmd_server_filesystem ;;
    dir)               cmd_dir ;;
    *)                 usage ;;
esac
