# shellcheck shell=sh
# Sourced by the release's bin/ scripts (not run on its own).
#
# Finds the release root from the calling script's own path, so a release
# works wherever it is moved, and picks the Python interpreter that can load
# lib/: the wheels vendored there hold compiled extensions (gevent, greenlet,
# rocksdict, ujson, bcrypt) built for one Python minor version.

VMQ_ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
VMQ_PYVER=$(cat "$VMQ_ROOT/lib/python-version")

# VMQ_PYTHON wins; else the exact minor version (python3.11 exists beside a
# newer python3 on many systems); else plain python3.
if [ -z "${VMQ_PYTHON:-}" ]; then
    if command -v "python$VMQ_PYVER" >/dev/null 2>&1; then
        VMQ_PYTHON=python$VMQ_PYVER
    else
        VMQ_PYTHON=python3
    fi
fi
if ! command -v "$VMQ_PYTHON" >/dev/null 2>&1; then
    echo "$(basename "$0"): $VMQ_PYTHON not found: this release needs Python $VMQ_PYVER (set VMQ_PYTHON)" >&2
    exit 1
fi

# lib/ only: the node must never pick up a vmqpy or a dependency from
# elsewhere (a source checkout, user site-packages). Exported so processes the
# node spawns (start daemonises) see the same path.
PYTHONPATH=$VMQ_ROOT/lib
export PYTHONPATH VMQ_ROOT
VERNEMQ_CONF=${VERNEMQ_CONF:-$VMQ_ROOT/etc/vernemq.conf}
export VERNEMQ_CONF

# Work in the release root, as VerneMQ's runner does: relative paths in
# vernemq.conf (platform_data_dir = ./data, ...) are relative to it wherever
# the command is started from. The config path is made absolute first.
vmq_cd_root() {
    case $VERNEMQ_CONF in
        /*) ;;
        *) VERNEMQ_CONF=$PWD/$VERNEMQ_CONF ;;
    esac
    cd "$VMQ_ROOT" || exit 1
}

# Python source that checks the interpreter, then runs vmqpy.scripts.$1's main
# under the command's own name. Use: exec "$VMQ_PYTHON" -s -c "$(vmq_entry mod)" ARGS
vmq_entry() {
    cat <<PY
import sys
if sys.version_info[:2] != tuple(map(int, "$VMQ_PYVER".split("."))):
    sys.exit("$(basename "$0"): this release is built for Python $VMQ_PYVER (lib/ holds compiled "
             "extensions for it), but %s is Python %d.%d; set VMQ_PYTHON to a python$VMQ_PYVER"
             % ((sys.executable,) + sys.version_info[:2]))
sys.argv[0] = "$(basename "$0")"
from vmqpy.scripts.$1 import main
sys.exit(main())
PY
}
