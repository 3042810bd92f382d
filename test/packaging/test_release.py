"""make rel: the release's layout, its generated config, and that it runs from wherever it is moved."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
from pkghelpers import SRC, VERSION, conf_value, run, use_free_ports

sys.path.insert(0, str(SRC / "rel"))
import genconf  # noqa: E402


def test_layout(release):
    for cmd in ("vernemq", "vmq-admin", "vmq-passwd"):
        assert os.access(release / "bin" / cmd, os.X_OK), cmd
    for d in ("data", "log", "etc", "lib/vmqpy", "lib/gevent", "lib/greenlet", "lib/rocksdict"):
        assert (release / d).is_dir(), d
    for f in ("vernemq.conf", "vmq.acl", "vmq.passwd"):
        assert (release / "etc" / f).is_file(), f
    assert list((release / "lib/rocksdict").glob("*.so")), "rocksdict's compiled extension is vendored"
    assert (release / "lib/python-version").read_text().strip() == "{}.{}".format(*sys.version_info[:2])
    # pip's console scripts would point at the build machine's interpreter
    assert not (release / "lib/bin").exists()


def test_release_never_points_into_the_source_tree(release):
    assert run(["grep", "-rl", str(SRC), str(release)], check=False).stdout == ""


def test_config_has_release_paths(release):
    conf = release / "etc/vernemq.conf"
    assert conf_value(conf, "platform_data_dir") == "./data"
    assert conf_value(conf, "platform_log_dir") == "./log"
    assert conf_value(conf, "platform_etc_dir") == "./etc"
    assert conf_value(conf, "vmq_passwd.password_file") == "./etc/vmq.passwd"
    assert conf_value(conf, "vmq_acl.acl_file") == "./etc/vmq.acl"
    # everything else comes from the repository's etc/vernemq.conf, comments included: only the
    # documented examples of the keys set above became settings
    lines = set(conf.read_text().splitlines())
    dropped = [line for line in (SRC / "etc/vernemq.conf").read_text().splitlines() if line not in lines]
    assert all(
        re.match(r"#+\s*(platform_\w+_dir|vmq_passwd\.password_file|vmq_acl\.acl_file)\s*=", line)
        or genconf.ACTIVE.match(line)
        for line in dropped
    ), dropped


def test_genconf_replaces_known_keys_moves_paths_and_binds_listeners():
    src = "\n".join(
        [
            "## Default: ./data",
            "platform_data_dir = ./data",
            "log.console.file = ./data/../log/console.log",
            "metadata.dir = ./data/meta",
            "allow_anonymous = on",
            "listener.tcp.default = 0.0.0.0:1883",
            "listener.ws.default = [::]:8080",
            "listener.max_connections = 100",
            "## vmq_acl.acl_file = ./etc/vmq.acl",
            "## The end.",
        ]
    )
    out = genconf.generate(
        src,
        {
            "platform_data_dir": "/var/lib/vernemq",
            "allow_anonymous": "off",
            "vmq_acl.acl_file": "/etc/vernemq/vmq.acl",
            "pid_file": "/run/vernemq.pid",
        },
        listen_ip="127.0.0.1",
    )
    lines = out.splitlines()
    assert "platform_data_dir = /var/lib/vernemq" in lines
    assert "metadata.dir = /var/lib/vernemq/meta" in lines
    assert "allow_anonymous = off" in lines
    assert "listener.tcp.default = 127.0.0.1:1883" in lines
    assert "listener.ws.default = 127.0.0.1:8080" in lines
    assert "listener.max_connections = 100" in lines
    assert "## Default: ./data" in lines
    # documented only: set where it is documented; absent: appended
    assert lines[8:10] == ["vmq_acl.acl_file = /etc/vernemq/vmq.acl", "## The end."]
    assert lines[-1] == "pid_file = /run/vernemq.pid"


def test_python_version_is_checked(release, tmp_path):
    moved = tmp_path / "vernemq"
    shutil.copytree(release / "bin", moved / "bin")
    shutil.copytree(release / "lib/vmqpy", moved / "lib/vmqpy")
    (moved / "lib/python-version").write_text("3.99\n")
    result = run([str(moved / "bin/vernemq"), "version"], check=False)
    assert result.returncode != 0
    assert "built for Python 3.99" in result.stderr
    result = run([str(moved / "bin/vmq-passwd")], check=False, env={**os.environ, "VMQ_PYTHON": "/nonexistent/python3"})
    assert result.returncode != 0
    assert "/nonexistent/python3 not found" in result.stderr


def test_low_ulimit_warns(release):
    # VMQ_PYTHON=false: the warning comes before the node starts, so no node is needed
    script = f"ulimit -n 1024 && exec {release}/bin/vernemq start"
    result = run(["sh", "-c", script], check=False, env={**os.environ, "VMQ_PYTHON": "false"})
    assert "WARNING: ulimit -n is 1024; 65536 is the recommended minimum." in result.stderr


def test_version(release):
    assert run([str(release / "bin/vernemq"), "version"]).stdout.split()[1] == VERSION


@pytest.fixture
def moved_release(release, tmp_path):
    """The release copied elsewhere, with the original out of the way while it runs."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(release, elsewhere, symlinks=True)
    aside = release.with_name("vernemq.aside")
    release.rename(aside)
    try:
        yield elsewhere
    finally:
        aside.rename(release)


def test_moved_release_runs_in_console_mode(moved_release, tmp_path):
    vernemq = str(moved_release / "bin/vernemq")
    use_free_ports(moved_release / "etc/vernemq.conf")
    env = {k: v for k, v in os.environ.items() if k not in ("VERNEMQ_CONF", "PYTHONPATH")}
    with open(tmp_path / "console.out", "w") as out:
        # started from another directory: the release finds itself
        node = subprocess.Popen([vernemq, "console"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    # reap it as soon as it exits: `stop` waits until the pid is gone, and an unreaped child is not
    threading.Thread(target=node.wait, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while run([vernemq, "ping"], check=False, env=env).stdout.strip() != "pong":
            assert node.poll() is None, (tmp_path / "console.out").read_text()
            assert time.monotonic() < deadline, "no pong within 30 s"
            time.sleep(0.3)
        assert run([vernemq, "getpid"], env=env).stdout.strip() == str(node.pid)
        assert "| true " in run([str(moved_release / "bin/vmq-admin"), "cluster", "show"], env=env).stdout
        assert run([vernemq, "config", "generate"], env=env, check=False).returncode == 0
        effective = run([vernemq, "config", "effective"], env=env).stdout
        assert str(moved_release / "data") in effective
        run([vernemq, "stop"], env=env)
        node.wait(timeout=30)
        result = run([vernemq, "ping"], check=False, env=env)
        assert result.returncode == 1
        assert "not responding to pings" in result.stdout + result.stderr
        # relative paths resolved against the moved release
        assert any((moved_release / "data").iterdir())
        assert any((moved_release / "log").iterdir())
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
