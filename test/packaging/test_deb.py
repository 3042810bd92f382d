"""make deb: install into a clean Debian bookworm root, run, upgrade, remove, purge.

The tests run in file order on one chroot: each step starts where the last left off.
"""

from __future__ import annotations

import os
import time

import pytest
from pkghelpers import VERSION, conf_value, needs_root, use_free_ports

pytestmark = needs_root

CONF = "/etc/vernemq/vernemq.conf"
USER, PASSWORD = "alice", "s3cret-pw"
EDIT = "## edited by the packaging test: kept across upgrades"
ENABLED = "/etc/systemd/system/multi-user.target.wants/vernemq.service"


@pytest.fixture(scope="module")
def target(chroot, debs):
    for deb in debs.values():
        (chroot.path("/tmp") / deb.name).write_bytes(deb.read_bytes())
    chroot.debs = {rev: f"/tmp/{deb.name}" for rev, deb in debs.items()}
    return chroot


def apt(target, *args):
    # stdin closed: a conffile question would fail the step instead of hanging it
    return target.sh("apt-get -y -q --no-install-recommends " + " ".join(args) + " </dev/null", timeout=300)


def installed_version(target):
    result = target.sh("dpkg-query -W -f '${Status} ${Version}' vernemq", check=False)
    return result.stdout.strip()


def test_install(target):
    apt(target, "install", target.debs[1])
    assert installed_version(target) == f"install ok installed {VERSION}-1"
    for path in (
        "/usr/lib/vernemq/bin/vernemq",
        "/usr/lib/vernemq/lib/vmqpy/__init__.py",
        "/usr/sbin/vernemq",
        "/usr/sbin/vmq-admin",
        "/usr/sbin/vmq-passwd",
        "/lib/systemd/system/vernemq.service",
        "/etc/logrotate.d/vernemq",
        CONF,
    ):
        assert target.path(path).exists(), path
    assert target.path(ENABLED).is_symlink(), "the unit is enabled on first install"
    conffiles = target.sh("dpkg-query -W -f '${Conffiles}' vernemq").stdout
    assert CONF in conffiles
    # production defaults
    conf = target.path(CONF)
    assert conf_value(conf, "allow_anonymous") == "off"
    assert conf_value(conf, "platform_data_dir") == "/var/lib/vernemq"
    assert conf_value(conf, "platform_log_dir") == "/var/log/vernemq"
    assert conf_value(conf, "platform_etc_dir") == "/etc/vernemq"
    assert conf_value(conf, "listener.tcp.default").startswith("127.0.0.1:")
    # the service user, and what it owns
    assert target.sh("getent passwd vernemq").stdout.split(":")[6].strip() == "/usr/sbin/nologin"
    assert target.sh("getent group vernemq").returncode == 0
    owners = target.sh("stat -c '%U:%G %a %n' /var/lib/vernemq /var/log/vernemq /etc/vernemq/vmq.passwd")
    assert owners.stdout.split("\n")[:3] == [
        "vernemq:vernemq 750 /var/lib/vernemq",
        "vernemq:vernemq 750 /var/log/vernemq",
        "vernemq:vernemq 640 /etc/vernemq/vmq.passwd",
    ]
    # logrotate accepts the packaged rule
    target.sh("logrotate -d /etc/logrotate.d/vernemq")


def configure_for_test(target):
    """Free ports, an ACL for the test user, the user itself via vmq-passwd."""
    ports = use_free_ports(target.path(CONF))
    target.path("/etc/vernemq/vmq.acl").write_text(f"user {USER}\ntopic vmqpy/#\n")
    target.sh(f"vmq-passwd /etc/vernemq/vmq.passwd {USER}", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert target.path("/etc/vernemq/vmq.passwd").read_text().startswith(f"{USER}:")
    return ports["listener.tcp.default"]


def start_node(target):
    target.sh("vernemq chkconfig")
    target.sh("vernemq start")
    assert target.sh("vernemq ping").stdout.strip() == "pong"  # start returns once it answers
    return int(target.sh("vernemq getpid").stdout)


def stop_node(target):
    target.sh("vernemq stop")
    result = target.sh("vernemq ping", check=False)
    assert result.returncode == 1
    assert "not responding to pings" in result.stdout + result.stderr


def mqtt_round_trip(target, port):
    auth = f"-h 127.0.0.1 -p {port} -u {USER} -P {PASSWORD} -t vmqpy/test -q 1"
    sub = target.popen(f"mosquitto_sub {auth} -C 1 -W 20")
    try:
        # publish until the subscriber has subscribed and received one
        deadline = time.monotonic() + 20
        while sub.poll() is None and time.monotonic() < deadline:
            target.sh(f"mosquitto_pub {auth} -m hello", check=False)
            time.sleep(0.5)
        out, _ = sub.communicate(timeout=5)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert out.strip().endswith("hello"), out


def test_node_runs_as_vernemq_and_serves_mqtt(target):
    target.port = configure_for_test(target)
    pid = start_node(target)
    assert os.stat(f"/proc/{pid}").st_uid == int(target.sh("id -u vernemq").stdout)
    assert target.sh("vernemq version").stdout.split()[1] == VERSION
    mqtt_round_trip(target, target.port)
    stop_node(target)


def test_upgrade_keeps_edited_config(target):
    conf = target.path(CONF)
    conf.write_text(conf.read_text() + f"\n{EDIT}\n")
    edited = conf.read_text()
    apt(target, "install", target.debs[2])
    assert installed_version(target) == f"install ok installed {VERSION}-2"
    assert conf.read_text() == edited
    assert not list(conf.parent.glob("*.dpkg-*"))
    # users and data survive too; the node keeps running for the remove step
    start_node(target)
    mqtt_round_trip(target, target.port)


def test_remove_stops_the_node_and_keeps_config_data_and_user(target):
    pid = int(target.sh("vernemq getpid").stdout)
    target.path("/var/lib/vernemq/marker").write_text("data")
    apt(target, "remove", "vernemq")
    assert installed_version(target).startswith("deinstall ok config-files")
    assert not target.path("/usr/lib/vernemq").exists()
    assert not target.path("/usr/sbin/vernemq").exists()
    assert EDIT in target.path(CONF).read_text()
    assert target.path("/var/lib/vernemq/marker").exists()
    assert target.sh("getent passwd vernemq", check=False).returncode == 0
    assert not os.path.exists(f"/proc/{pid}"), "prerm stops a node running outside systemd"


def test_purge_removes_everything(target):
    apt(target, "purge", "vernemq")
    assert target.sh("dpkg-query -W vernemq", check=False).returncode != 0 or "not-installed" in (
        installed_version(target)
    )
    for path in (
        "/etc/vernemq",
        "/var/lib/vernemq",
        "/var/log/vernemq",
        "/usr/lib/vernemq",
        "/lib/systemd/system/vernemq.service",
        "/etc/logrotate.d/vernemq",
        ENABLED,
    ):
        assert not target.path(path).is_symlink() and not target.path(path).exists(), path
    assert target.sh("getent passwd vernemq", check=False).returncode == 2
    assert target.sh("getent group vernemq", check=False).returncode == 2
    assert not target.pids(), "nothing left running"
