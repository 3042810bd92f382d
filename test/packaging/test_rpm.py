"""make rpm: the package's contents, scriptlets and requirements, and a file install into a scratch root.

The scratch root is a copy of the Debian root (it has the /bin/sh, useradd and
python3.11 the scriptlets and the node need) with an empty rpm database: its
dependencies are not rpm packages there, hence `--nodeps` (the requirements are
checked as declared instead).
"""

from __future__ import annotations

import pytest
from pkghelpers import VERSION, needs_root, run


def query(package, *options):
    return run(["rpm", "-qp", *options, str(package)]).stdout


def test_contents(rpm):
    files = query(rpm, "-l").split()
    for path in (
        "/usr/lib/vernemq/bin/vernemq",
        "/usr/lib/vernemq/lib/vmqpy/__init__.py",
        "/usr/sbin/vernemq",
        "/usr/sbin/vmq-admin",
        "/usr/sbin/vmq-passwd",
        "/etc/vernemq/vernemq.conf",
        "/usr/lib/systemd/system/vernemq.service",
        "/etc/logrotate.d/vernemq",
        "/var/lib/vernemq",
        "/var/log/vernemq",
    ):
        assert path in files, path
    assert not [f for f in files if f.startswith("/usr/lib/.build-id")]
    assert "/etc/vernemq/vernemq.conf" in query(rpm, "-c").split()
    assert query(rpm, "--queryformat", "%{VERSION}-%{RELEASE}") == f"{VERSION}-1"


def test_requires_and_scripts(rpm, release):
    requires = query(rpm, "--requires")
    pyver = (release / "lib/python-version").read_text().strip()
    assert f"/usr/bin/python{pyver}" in requires
    assert "glibc >= 2." in requires
    scripts = query(rpm, "--scripts")
    assert "useradd --system" in scripts
    assert "vmq_own_files" in scripts


@pytest.fixture(scope="module")
def scratch(chroot, rpm):
    run(["rpm", "--root", str(chroot.root), "--initdb"])
    run(["rpm", "--root", str(chroot.root), "-i", "--nodeps", str(rpm)])
    return chroot


@needs_root
def test_installs_with_scriptlets(scratch):
    assert scratch.sh("getent passwd vernemq").returncode == 0
    assert scratch.sh("stat -c %U /var/lib/vernemq /etc/vernemq/vmq.passwd").stdout.split() == [
        "vernemq",
        "vernemq",
    ]
    assert scratch.path("/usr/lib/systemd/system/vernemq.service").is_file()


@needs_root
def test_installed_commands_run(scratch):
    assert scratch.sh("vernemq version").stdout.split()[1] == VERSION
    scratch.sh("vernemq chkconfig")


@needs_root
def test_erase_keeps_data_and_user(scratch):
    scratch.path("/var/lib/vernemq/marker").write_text("data")
    run(["rpm", "--root", str(scratch.root), "-e", "--nodeps", "vernemq"])
    assert not scratch.path("/usr/lib/vernemq").exists()
    assert scratch.path("/var/lib/vernemq/marker").exists()
    assert scratch.sh("getent passwd vernemq").returncode == 0
