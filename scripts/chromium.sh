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

install_browser() {
  [ -x "$BROWSER" ] && return 0
  [ "$(id -u)" -eq 0 ] || die "Chromium is not installed; as root run: apt-get install -y chromium"
  command -v apt-get >/dev/null || die "Chromium is not installed and apt-get is absent"
  echo "installing Debian's chromium package (once)" >&2
  # two test runs may get here together: one installs, the other waits for it
  (
    flock 9
    if [ ! -x "$BROWSER" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt_get() { apt-get -o DPkg::Lock::Timeout=300 -qq "$@" >/dev/null; }
      apt_get install -y chromium || { apt_get update && apt_get install -y chromium; } \
        || die "apt-get install -y chromium failed"
    fi
  ) 9>"${TMPDIR:-/tmp}/paycadence-chromium-install.lock"
  [ -x "$BROWSER" ] || die "chromium is installed but $BROWSER is missing"
}

case "${1:-}" in
  install) install_browser ;;
  path) [ -x "$BROWSER" ] || die "$BROWSER is missing: bash scripts/chromium.sh install"
        echo "$BROWSER" ;;
  *) die "usage: bash scripts/chromium.sh install|path" ;;
esac
