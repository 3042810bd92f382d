#!/usr/bin/env bash
# make deb: _build/packages/vernemq_<version>-<PKG_RELEASE>_<arch>.deb from the
# release, with dpkg-deb (no debhelper, no fpm).
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

arch=$(dpkg --print-architecture)
root=$BUILD_DIR/deb/root
stage_tree "$root" /lib/systemd/system

mkdir -p "$root/DEBIAN"
sed -e "s/@VERSION@/$VERSION/" -e "s/@PKG_RELEASE@/$PKG_RELEASE/" -e "s/@ARCH@/$arch/" \
    -e "s|@MAINTAINER@|$MAINTAINER|" -e "s/@PYVER@/$PYVER/g" -e "s/@GLIBC@/$GLIBC/" \
    -e "s/@INSTALLED_SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" \
    "$PKG/debian/control" > "$root/DEBIAN/control"
for script in postinst prerm postrm; do
    with_maint_lib "$PKG/debian/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
# dpkg keeps an admin's edits to these on upgrade and removes them on purge.
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"

mkdir -p "$PKG_DIR"
deb=$PKG_DIR/vernemq_${VERSION}-${PKG_RELEASE}_$arch.deb
dpkg-deb --root-owner-group -Zxz -z3 --build "$root" "$deb" >/dev/null
echo "deb: $deb"
