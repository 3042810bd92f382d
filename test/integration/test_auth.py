"""Authentication end to end: vmq_passwd files, reloads, allow_anonymous, CONNACK codes."""

from __future__ import annotations

import subprocess

import pytest
from authkit import BAD_CREDENTIALS, NOT_AUTHORIZED, V3, V5, VMQ_PASSWD, connack, vmq_passwd
from broker import Broker, wait_until

RELOAD = {"allow_anonymous": "off", "vmq_passwd.password_reload_interval": "1"}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """allow_anonymous off, one user (alice/secret) written by bin/vmq-passwd, reloads every second."""
    node = Broker(tmp_path_factory.mktemp("auth"), RELOAD)
    vmq_passwd(node.root / "vmq.passwd", "alice", "secret")
    node.start()
    yield node
    node.stop()
    node.cleanup()


@pytest.mark.parametrize("version", [V3, V5])
def test_right_password_is_accepted(node, cid, version):
    assert connack(node.port, version, cid, "alice", "secret") == 0


@pytest.mark.parametrize("version", [V3, V5])
def test_wrong_password_is_bad_credentials(node, cid, version):
    assert connack(node.port, version, cid, "alice", "wrong") == BAD_CREDENTIALS[version]


@pytest.mark.parametrize("version", [V3, V5])
def test_unknown_user_is_not_authorized(node, cid, version):
    assert connack(node.port, version, cid, "mallory", "secret") == NOT_AUTHORIZED[version]


@pytest.mark.parametrize("version", [V3, V5])
def test_anonymous_is_refused_when_allow_anonymous_is_off(node, cid, version):
    assert connack(node.port, version, cid) == NOT_AUTHORIZED[version]
    assert connack(node.port, version, cid, "alice") == NOT_AUTHORIZED[version]  # no password


def test_reload_picks_up_a_user_added_with_vmq_passwd(node, cid):
    assert connack(node.port, V3, cid, "bob", "hunter2") == NOT_AUTHORIZED[V3]
    vmq_passwd(node.root / "vmq.passwd", "bob", "hunter2")
    wait_until(lambda: connack(node.port, V3, cid, "bob", "hunter2") == 0, 10, "reload of the passwd file")
    assert connack(node.port, V3, cid, "alice", "secret") == 0  # the old users are still there


def test_reload_picks_up_a_changed_password_and_a_deletion(node, cid):
    vmq_passwd(node.root / "vmq.passwd", "carol", "one")
    wait_until(lambda: connack(node.port, V5, cid, "carol", "one") == 0, 10, "carol added")
    vmq_passwd(node.root / "vmq.passwd", "carol", "two")
    wait_until(lambda: connack(node.port, V5, cid, "carol", "two") == 0, 10, "carol's new password")
    assert connack(node.port, V5, cid, "carol", "one") == BAD_CREDENTIALS[V5]
    subprocess.run([VMQ_PASSWD, "-D", str(node.root / "vmq.passwd"), "carol"], check=True, capture_output=True)
    wait_until(lambda: connack(node.port, V5, cid, "carol", "two") == NOT_AUTHORIZED[V5], 10, "carol deleted")


@pytest.mark.parametrize("hash_flags", [[], ["-H", "sha512"]], ids=["pbkdf2-default", "sha512"])
def test_a_mosquitto_passwd_file_works(make_broker, cid, hash_flags):
    node = make_broker(RELOAD, start=False)
    passwd = node.root / "vmq.passwd"
    subprocess.run(["mosquitto_passwd", *hash_flags, "-b", str(passwd), "mosq", "pa55"], check=True,
                   capture_output=True, timeout=30)
    assert passwd.read_text().startswith("mosq:$7$" if not hash_flags else "mosq:$6$")
    node.start()
    assert connack(node.port, V3, cid, "mosq", "pa55") == 0
    assert connack(node.port, V5, cid, "mosq", "pa56") == BAD_CREDENTIALS[V5]


def test_allow_anonymous_on_skips_auth_on_register(make_broker, cid):
    """As VerneMQ documents: with allow_anonymous = on no auth_on_register hook is asked,
    so even a user the passwd file knows gets in with a wrong password."""
    node = make_broker({"allow_anonymous": "on"}, start=False)
    vmq_passwd(node.root / "vmq.passwd", "alice", "secret")
    node.start()
    for version in (V3, V5):
        assert connack(node.port, version, cid) == 0
        assert connack(node.port, version, cid, "alice", "wrong") == 0
        assert connack(node.port, version, cid, "nobody", "x") == 0
