#!/usr/bin/env bash
# chromium_env.sh — the browser the console tests (tests/it/console.rs) drive: Debian's headless-
# capable Chromium and its matching chromedriver, from the distribution's packages (no browser
# download of its own: the W3C WebDriver client in tests/it/browser.rs talks to chromedriver).
#
#   chromium_env.sh ensure   install the `chromium` and `chromium-driver` packages with apt-get
#                            unless /usr/bin/chromium and /usr/bin/chromedriver are already there;
#                            a fast no-op then. Prints one line saying what it did.
#   chromium_env.sh path     print the chromedriver path (exit 1 if not installed)
#
# Installing needs root or sudo and access to Debian's package archive; `apt-get update` runs
# only when the install fails without it.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

log() { printf 'chromium_env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

installed() { [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; }

# The driver's own version line, e.g. "ChromeDriver 148.0.7778.167 (...)", without the build hash.
driver_version() { "$CHROMEDRIVER" --version 2>/dev/null | awk '{print $2}'; }

ensure() {
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

cmd_path() {
    [ -x "$CHROMEDRIVER" ] || die "$CHROMEDRIVER is not installed (run: $0 ensure)"
    echo "$CHROMEDRIVER"
}

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

case "${1:-}" in
    ensure) ensure ;;
    path)   cmd_path ;;
    *)      usage ;;
esac
