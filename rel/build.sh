#!/usr/bin/env bash
# Assemble a self-contained, relocatable release (make rel):
#
#   bin/   vernemq, vmq-admin, vmq-passwd (+ env.sh they share)
#   lib/   vmqpy and every dependency, installed from wheels with
#          `pip install --target` (a venv would not survive being moved)
#   etc/   vernemq.conf generated from the repository's, vmq.acl, vmq.passwd
#   data/ log/
#
# Environment: PYTHON (the interpreter to vendor for, default python3: lib/
# then runs on that Python minor version only), REL_DIR (default
# _build/rel/vernemq), BUILD_DIR (default _build). Writes nothing outside them.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd -P)
BUILD_DIR=${BUILD_DIR:-$SRC/_build}
REL_DIR=${REL_DIR:-$BUILD_DIR/rel/vernemq}
PYTHON=${PYTHON:-python3}

die() { echo "rel/build.sh: $*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "vmqpy needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ -f "$SRC/etc/vernemq.conf" ] || die "$SRC/etc/vernemq.conf is missing"

# setuptools writes build/ and *.egg-info beside setup.py: build the wheel
# from a copy so the source tree is never written to.
work=$BUILD_DIR/rel-work
rm -rf "$work"
mkdir -p "$work/src" "$work/wheels"
cp -a "$SRC/setup.py" "$SRC/pyproject.toml" "$SRC/vmqpy" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/wheels" "$work/src"

# Assemble beside the target and swap it in at the end, so a failed build
# leaves the previous release whole.
new=$REL_DIR.new
rm -rf "$new"
mkdir -p "$new/bin" "$new/lib" "$new/etc" "$new/data" "$new/log"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --only-binary=:all: \
    --target "$new/lib" "$work"/wheels/vmqpy-*.whl
# pip's console scripts point at the build machine's interpreter (bin/ replaces
# them), direct_url.json at the build directory.
rm -rf "$new/lib/bin" "$new"/lib/vmqpy-*.dist-info/direct_url.json
echo "$pyver" > "$new/lib/python-version"

install -m 0755 "$SRC"/rel/bin/vernemq "$SRC"/rel/bin/vmq-admin "$SRC"/rel/bin/vmq-passwd "$new/bin/"
install -m 0644 "$SRC/rel/bin/env.sh" "$new/bin/"

# The launchers run the node in the release root, so relative paths keep the
# release relocatable.
"$PYTHON" "$SRC/rel/genconf.py" "$SRC/etc/vernemq.conf" "$new/etc/vernemq.conf" \
    --set platform_data_dir=./data \
    --set platform_log_dir=./log \
    --set platform_etc_dir=./etc \
    --set vmq_passwd.password_file=./etc/vmq.passwd \
    --set vmq_acl.acl_file=./etc/vmq.acl \
    --set log.console=file
for f in vmq.acl vmq.passwd; do
    if [ -f "$SRC/etc/$f" ]; then install -m 0644 "$SRC/etc/$f" "$new/etc/"; else : > "$new/etc/$f"; fi
done
chmod 0600 "$new/etc/vmq.passwd"

rm -rf "$REL_DIR" "$work"
mv "$new" "$REL_DIR"
echo "release: $REL_DIR (vmqpy $(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REL_DIR/lib/vmqpy/__init__.py"), Python $pyver)"
