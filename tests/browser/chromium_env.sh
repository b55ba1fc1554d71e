#!/usr/bin/env bash
# chromium_env.sh — the browser the console tests (tests/it/console.rs) drive: Debian's headless-
# capable Chromium and its matching chromedriver, from the distribution's packages (no browser
# download of its own: the W3C WebDriver client in tests/it/browser.rs talks to chromedriver);
# and axe-core, the accessibility engine the tests inject into the page, from npm at the exact
# version pinned in tests/browser/package.json and package-lock.json.
#
#   chromium_env.sh ensure   install the `chromium` and `chromium-driver` packages with apt-get
#                            unless /usr/bin/chromium and /usr/bin/chromedriver are already there,
#                            and axe-core with `npm ci` into target/browser-node unless
#                            package.json / package-lock.json are unchanged since the last
#                            install; a fast no-op then. Prints one line for each saying what it did.
#   chromium_env.sh path     print the chromedriver path (exit 1 if not installed)
#   chromium_env.sh axe      print the absolute path of axe-core's axe.min.js (exit 1 if not
#                            installed)
#
# Installing the browser needs root or sudo and access to Debian's package archive; `apt-get
# update` runs only when the install fails without it. axe-core needs node and npm on PATH and
# access to the npm registry (or npm's configured one). Regenerate the lock file after changing
# package.json: cd tests/browser && npm install --package-lock-only --no-audit --no-fund.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NODE_DIR="$ROOT/target/browser-node"
STAMP="$NODE_DIR/.install.sha256"
AXE_PACKAGE="axe-core"
AXE_JS="$NODE_DIR/node_modules/$AXE_PACKAGE/axe.min.js"

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

log() { printf 'chromium_env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

installed() { [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; }

# The driver's own version line, e.g. "ChromeDriver 148.0.7778.167 (...)", without the build hash.
driver_version() { "$CHROMEDRIVER" --version 2>/dev/null | awk '{print $2}'; }

ensure() {
    ensure_browser
    ensure_axe
}

ensure_browser() {
    if installed; then
        echo "chromium_env: $CHROMIUM and $CHROMEDRIVER are installed (chromedriver $(driver_version))"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${PACKAGES[*]} by hand"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Chromium and its chromedriver by hand"
    local t0=$SECONDS
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}")
    if ! "${install[@]}" >&2; then
        log "install failed; refreshing the package lists and trying again"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
        "${install[@]}" >&2 || die "apt-get install ${PACKAGES[*]} failed"
    fi
    installed || die "installed ${PACKAGES[*]} but $CHROMIUM or $CHROMEDRIVER is still missing"
    echo "chromium_env: installed ${PACKAGES[*]} (chromedriver $(driver_version)) in $((SECONDS - t0))s"
}

install_hash() {
    # node's version is part of the key: a new node means a fresh install.
    { cat "$HERE/package.json" "$HERE/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1
}

axe_up_to_date() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$1" ] \
        && cmp -s "$HERE/package.json" "$NODE_DIR/package.json" \
        && cmp -s "$HERE/package-lock.json" "$NODE_DIR/package-lock.json" \
        && [ -f "$AXE_JS" ]
}

ensure_axe() {
    command -v node >/dev/null 2>&1 || die "node not found; install Node.js 20+ (for $AXE_PACKAGE)"
    command -v npm >/dev/null 2>&1 || die "npm not found; install npm (for $AXE_PACKAGE)"
    local want
    want="$(install_hash)"
    if axe_up_to_date "$want"; then
        echo "chromium_env: $NODE_DIR is up to date"
        return 0
    fi
    local t0=$SECONDS what="created"
    [ -d "$NODE_DIR" ] && what="reinstalled"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2); then
        rm -rf "$NODE_DIR"
        die "npm ci in $NODE_DIR failed (is the npm registry reachable?)"
    fi
    [ -f "$AXE_JS" ] || { rm -rf "$NODE_DIR"; die "$AXE_PACKAGE installed without axe.min.js"; }
    echo "$want" >"$STAMP"
    local version
    version="$(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/$AXE_PACKAGE/package.json")"
    echo "chromium_env: $what $NODE_DIR ($AXE_PACKAGE $version, node $(node --version)) in $((SECONDS - t0))s"
}

cmd_axe() {
    [ -f "$STAMP" ] && [ -f "$AXE_JS" ] || die "$AXE_PACKAGE is not installed in $NODE_DIR (run: $0 ensure)"
    echo "$AXE_JS"
}

cmd_path() {
    [ -x "$CHROMEDRIVER" ] || die "$CHROMEDRIVER is not installed (run: $0 ensure)"
    echo "$CHROMEDRIVER"
}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

case "${1:-}" in
    ensure) ensure ;;
    path)   cmd_path ;;
    axe)    cmd_axe ;;
    *)      usage ;;
esac
