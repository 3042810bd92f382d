# shellcheck shell=bash disable=SC2034 # sets variables for the scripts sourcing it
# Sourced by build-deb.sh and build-rpm.sh: what both packages hold, built
# from the release that `make rel` assembled (REL_DIR).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PKG=$SRC/packaging
BUILD_DIR=${BUILD_DIR:-$SRC/_build}
REL_DIR=${REL_DIR:-$BUILD_DIR/rel/vernemq}
PKG_DIR=${PKG_DIR:-$BUILD_DIR/packages}
PYTHON=${PYTHON:-python3}
# The package revision: bump it to rebuild the same vmqpy version.
PKG_RELEASE=${PKG_RELEASE:-1}
MAINTAINER=${MAINTAINER:-vmqpy developers <vmqpy@localhost>}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

[ -x "$REL_DIR/bin/vernemq" ] || die "no release in $REL_DIR: run make rel first"
# The one version: vmqpy/__init__.py, as vendored into the release.
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REL_DIR/lib/vmqpy/__init__.py")
[ -n "$VERSION" ] || die "no __version__ in $REL_DIR/lib/vmqpy/__init__.py"
# lib/ holds compiled extensions for this Python minor version only.
PYVER=$(cat "$REL_DIR/lib/python-version")
# ...and for this glibc or newer: the highest symbol version they use.
GLIBC=$(find "$REL_DIR/lib" -name '*.so*' -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[ -n "$GLIBC" ] || die "could not read the glibc version the release needs (objdump, binutils)"

# The installed tree, in $1. Settings under /etc follow production defaults:
# nothing anonymous, listeners on loopback only (see docs/packaging.md).
stage_tree() {
    local root=$1 unitdir=$2
    local lib=$root/usr/lib/vernemq
    rm -rf "$root"
    mkdir -p "$lib" "$root/usr/sbin" "$root/etc/vernemq" "$root/etc/logrotate.d" \
        "$root/var/lib/vernemq" "$root/var/log/vernemq" "$root$unitdir" "$root/usr/share/doc/vernemq"
    cp -a "$REL_DIR/bin" "$REL_DIR/lib" "$lib/"
    # The release layout stays whole: its etc, data and log are the system's.
    ln -s /etc/vernemq "$lib/etc"
    ln -s /var/lib/vernemq "$lib/data"
    ln -s /var/log/vernemq "$lib/log"
    for cmd in vernemq vmq-admin vmq-passwd; do
        install -m 0755 "$PKG/wrapper.sh" "$root/usr/sbin/$cmd"
    done
    "$PYTHON" "$SRC/rel/genconf.py" "$REL_DIR/etc/vernemq.conf" "$root/etc/vernemq/vernemq.conf" \
        --set platform_data_dir=/var/lib/vernemq \
        --set platform_log_dir=/var/log/vernemq \
        --set platform_etc_dir=/etc/vernemq \
        --set vmq_passwd.password_file=/etc/vernemq/vmq.passwd \
        --set vmq_acl.acl_file=/etc/vernemq/vmq.acl \
        --set pid_file=/var/lib/vernemq/vernemq.pid \
        --set allow_anonymous=off \
        --set log.console.rotation.size=infinity \
        --set log.error.rotation.size=infinity \
        --listen-ip 127.0.0.1
    install -m 0644 "$REL_DIR/etc/vmq.acl" "$root/etc/vernemq/"
    install -m 0644 "$PKG/vernemq.service" "$root$unitdir/"
    install -m 0644 "$PKG/vernemq.logrotate" "$root/etc/logrotate.d/vernemq"
    install -m 0644 "$SRC/docs/packaging.md" "$root/usr/share/doc/vernemq/"
    printf '%s\n' "vmqpy $VERSION, Apache-2.0." \
        "/usr/lib/vernemq/lib bundles Python packages; each one's license is in its *.dist-info." \
        > "$root/usr/share/doc/vernemq/copyright"
}

# A maintainer script template with #@MAINT_LIB@ replaced by maint-lib.sh.
with_maint_lib() {
    sed -e "/^#@MAINT_LIB@\$/{r $PKG/maint-lib.sh" -e 'd}' "$1"
}
