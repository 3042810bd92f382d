#!/usr/bin/env bash
# make rpm: _build/packages/vernemq-<version>-<PKG_RELEASE>.<arch>.rpm from the
# release, with rpmbuild (Debian's rpm package; no fpm).
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
command -v rpmbuild >/dev/null || die "rpmbuild not found (apt-get install rpm)"

top=$BUILD_DIR/rpm
unitdir=/usr/lib/systemd/system
rm -rf "$top"
stage_tree "$top/stage" "$unitdir"
mkdir -p "$PKG_DIR"
# Warnings filtered out as expected: the user named in %attr does not exist
# on the build machine (the name is recorded, which is what the package
# needs); /usr/lib/vernemq/{etc,data,log} link to absolute paths on purpose
# (links between top-level directories stay absolute, Debian policy 10.5).
rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "_rpmdir $PKG_DIR" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_binary_payload w3.xzdio" \
    --define "stage $top/stage" \
    --define "pkgdir $PKG" \
    --define "unitdir $unitdir" \
    --define "vmq_version $VERSION" \
    --define "pkg_release $PKG_RELEASE" \
    --define "pyver $PYVER" \
    --define "glibc $GLIBC" \
    "$PKG/rpm/vernemq.spec" 2> >(grep -v -e 'does not exist - using root' -e 'absolute symlink' >&2)
echo "rpm: $PKG_DIR/vernemq-$VERSION-$PKG_RELEASE.$(uname -m).rpm"
