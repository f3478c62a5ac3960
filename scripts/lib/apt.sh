# Sourced by scripts/chromium.sh and scripts/postgres.sh: install a Debian package once.
#
#   apt_install_once PACKAGE CHECK...   run CHECK...; when it fails, install PACKAGE with
#                                       apt-get (root only) and run CHECK... again
#
# Two test workers may get here together: one installs under a lock, the other waits for it.
# Failures go through the caller's `die`.

apt_install_once() {
  local package="$1"
  shift
  "$@" && return 0
  [ "$(id -u)" -eq 0 ] || die "$package is not installed; as root run: apt-get install -y $package"
  command -v apt-get >/dev/null || die "$package is not installed and apt-get is absent"
  echo "installing Debian's $package package (once)" >&2
  (
    flock 9
    if ! "$@"; then
      export DEBIAN_FRONTEND=noninteractive
      apt_get() { apt-get -o DPkg::Lock::Timeout=300 -qq "$@" >/dev/null; }
      apt_get install -y "$package" || { apt_get update && apt_get install -y "$package"; } \
        || die "apt-get install -y $package failed"
    fi
  ) 9>"${TMPDIR:-/tmp}/paycadence-$package-install.lock"
  "$@" || die "$package is installed but the check '$*' still fails"
}
