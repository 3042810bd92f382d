"""Fixtures of the packaging tests.

The builds run once per session into the repository's _build/, through the
make targets. The Debian bookworm root made by debootstrap is cached outside
the repository (VMQPY_TEST_CACHE, default /var/cache/vmqpy-test) because it
takes a minute to make; each test module installs into a copy of it.
"""

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

# The tests import their helpers by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pkghelpers import PKG_DIR, REL_DIR, VERSION, Chroot, make, run  # noqa: E402

MIRROR = os.environ.get("VMQPY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the throwaway root holds besides a minimal Debian: the package's
# dependencies and Recommends (so installing it downloads nothing) and the
# MQTT clients for the round trip.
DEBOOTSTRAP_INCLUDE = "python3,logrotate,mosquitto-clients"


@pytest.fixture(scope="session")
def release():
    make("rel")
    return REL_DIR


@pytest.fixture(scope="session")
def debs(release):
    """Revision 1, and a revision 2 to upgrade to."""
    make("deb")
    make("deb", PKG_RELEASE="2")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    built = {rev: PKG_DIR / f"vernemq_{VERSION}-{rev}_{arch}.deb" for rev in (1, 2)}
    for path in built.values():
        assert path.is_file(), f"{path} was not built"
    return built


@pytest.fixture(scope="session")
def rpm(release):
    make("rpm")
    path = PKG_DIR / f"vernemq-{VERSION}-1.{os.uname().machine}.rpm"
    assert path.is_file(), f"{path} was not built"
    return path


@pytest.fixture(scope="session")
def bookworm_root():
    """A pristine Debian bookworm root, made once and cached."""
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    if not shutil.which("debootstrap"):
        pytest.fail("debootstrap not found: apt-get install debootstrap")
    digest = hashlib.sha256(f"{MIRROR} {DEBOOTSTRAP_INCLUDE}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("VMQPY_TEST_CACHE", "/var/cache/vmqpy-test")) / f"bookworm-{digest}"
    if not cache.is_dir():
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        run(["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_INCLUDE}", "bookworm", str(partial), MIRROR])
        partial.rename(cache)
    return cache


@pytest.fixture(scope="module")
def chroot(bookworm_root, tmp_path_factory):
    target = Chroot(bookworm_root, tmp_path_factory.mktemp("chroot") / "root")
    try:
        yield target
    finally:
        target.destroy()
