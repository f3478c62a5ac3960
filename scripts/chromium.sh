#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/serving/test_report.py).
#
#   bash scripts/chromium.sh install    install Debian's chromium package if /usr/bin/chromium
#                                       is missing (needs root and apt-get); quiet when present
#   bash scripts/chromium.sh path       print the browser's path (exit 2 when it is missing)
#
# The test drives it with the playwright Python package and this binary; nothing is downloaded
# by playwright itself (never run `playwright install`).
set -euo pipefail

BROWSER="${PAYCADENCE_CHROMIUM:-/usr/bin/chromium}"

die() { echo "error: $*" >&2; exit 2; }

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

browser_present() { [ -x "$BROWSER" ]; }

install_browser() { apt_install_once chromium browser_present; }

case "${1:-}" in
  install) install_browser ;;
  path) [ -x "$BROWSER" ] || die "$BROWSER is missing: bash scripts/chromium.sh install"
        echo "$BROWSER" ;;
  *) die "usage: bash scripts/chromium.sh install|path" ;;
esac
