#!/usr/bin/env bash
# Installs Chromium for the report's browser tests (tests/integration/test_report_browser.py),
# only when it is missing. Debian/Ubuntu with apt, as root; anywhere else it prints how to
# install and exits 0, and the browser tests skip (unless CIRCULATE_REQUIRE_BROWSER=1).
# Usage: scripts/install-browser.sh   (or `make browser`)
set -euo pipefail

chromium="${CIRCULATE_CHROMIUM:-/usr/bin/chromium}"
# DejaVu gives headless screenshots readable text when the machine has no other font.
packages=(chromium fonts-dejavu-core)

if [ -x "$chromium" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    cat <<MSG
Chromium was not found at $chromium, so the report's browser tests will be skipped.
To run them, install Chromium and a font, for example on Debian or Ubuntu:
    sudo apt-get update && sudo apt-get install -y ${packages[*]}
or point CIRCULATE_CHROMIUM at an existing Chromium or Chrome binary.
MSG
    exit 0
fi

echo "Installing ${packages[*]} with apt-get (Chromium is missing at $chromium)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}"

if [ ! -x "$chromium" ]; then
    echo "apt-get installed ${packages[*]} but $chromium is still missing:" \
        "set CIRCULATE_CHROMIUM to the Chromium binary's path" >&2
    exit 1
fi
echo "Chromium installed at $chromium"
