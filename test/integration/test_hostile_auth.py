"""Hostile credentials, client ids and topics cannot get past vmq_passwd and vmq_acl."""

from __future__ import annotations

import pytest
from authkit import BAD_CREDENTIALS, NOT_AUTHORIZED, V3, V5, connack, connected, publish, subscribe, vmq_passwd
from broker import Broker
from clients import Paho

from vmqpy.mqtt import packets as P

LONG = 65535  # the longest MQTT string / binary field

ACL = """\
topic write wild/#
user watcher
topic read #
pattern read users/%u/#
pattern write users/%u/out
pattern read dev/%c/#
pattern read %c/#
"""


def refused(codes: list[int]) -> bool:
    """Every filter refused: 0x87 not authorized, or 0x8F where the filter itself is invalid."""
    return all(code >= 0x80 for code in codes)


@pytest.fixture(scope="module")
def auth_node(tmp_path_factory):
    node = Broker(tmp_path_factory.mktemp("hostile-auth"), {"allow_anonymous": "off"})
    passwd = node.root / "vmq.passwd"
    vmq_passwd(passwd, "alice", "secret")
    vmq_passwd(passwd, "colon", "p:w:d")  # a password may contain ':'
    vmq_passwd(passwd, "longpw", "x" * 4096)
    node.start()
    yield node
    node.stop()
    node.cleanup()


@pytest.fixture(scope="module")
def acl_node(tmp_path_factory):
    node = Broker(tmp_path_factory.mktemp("hostile-acl"), acl=ACL)  # anonymous on: usernames as given
    node.start()
    yield node
    node.stop()
    node.cleanup()


@pytest.mark.parametrize("version", [V3, V5])
def test_a_colon_in_the_username_never_matches_an_entry(auth_node, cid, version):
    for username in ("alice:", "alice:secret", ":alice", "alice:$6$"):
        assert connack(auth_node.port, version, cid, username, "secret") == NOT_AUTHORIZED[version]
    assert connack(auth_node.port, version, cid, "colon", "p:w:d") == 0
    assert connack(auth_node.port, version, cid, "colon", "p") == BAD_CREDENTIALS[version]


@pytest.mark.parametrize("version", [V3, V5])
def test_nul_in_credentials_is_refused(auth_node, cid, version):
    # A NUL in a UTF-8 string is malformed: the codec refuses before auth (v3: close, v5: 0x81).
    assert connack(auth_node.port, version, cid, "alice\0", "secret") == (None if version == V3 else 0x81)
    assert connack(auth_node.port, version, cid, "alice", b"secret\0") == BAD_CREDENTIALS[version]
    assert connack(auth_node.port, version, cid, "alice", b"\0secret") == BAD_CREDENTIALS[version]
    assert connack(auth_node.port, version, cid, "alice", "secret") == 0  # still serving


@pytest.mark.parametrize("version", [V3, V5])
def test_64k_credentials_are_refused_quickly(auth_node, cid, version):
    assert connack(auth_node.port, version, cid, "a" * LONG, "secret") == NOT_AUTHORIZED[version]
    assert connack(auth_node.port, version, cid, "alice", b"s" * LONG) == BAD_CREDENTIALS[version]
    assert connack(auth_node.port, version, cid, "a" * LONG, b"s" * LONG) == NOT_AUTHORIZED[version]
    assert connack(auth_node.port, version, cid, "longpw", "x" * 4096) == 0
    assert connack(auth_node.port, version, cid, "longpw", "x" * 4095) == BAD_CREDENTIALS[version]


@pytest.mark.parametrize("username", ["+", "#", "a/b", "bob/+", "bob/#"])
def test_username_wildcards_or_levels_cannot_widen_a_u_pattern(acl_node, cid, username):
    raw = connected(acl_node.port, V5, cid, username)
    for filt in ("users/+/#", "users/#", f"users/{username}/#", "users/a/b/#", "users/bob/x"):
        assert refused(subscribe(raw, filt)), filt
    raw.close()
    # An honest name gets its own tree only.
    bob = connected(acl_node.port, V5, cid + "b", "bob")
    assert subscribe(bob, "users/bob/#") == [1]
    assert subscribe(bob, "users/+/#") == [0x87]


def test_username_with_a_slash_cannot_write_another_users_tree(acl_node, cid):
    """`pattern write users/%u/out` must not turn user "bob/x" into a writer of users/bob/x/out."""
    sneaky = connected(acl_node.port, V5, cid, "bob/x")
    assert publish(sneaky, "users/bob/x/out") == 0x87
    bob = connected(acl_node.port, V5, cid + "b", "bob")
    assert publish(bob, "users/bob/out") == 0


@pytest.mark.parametrize("client_id", ["+", "#", "a/b"])
def test_client_id_cannot_widen_a_c_pattern(acl_node, client_id):
    raw = connected(acl_node.port, V5, client_id)
    for filt in ("dev/+/#", "dev/#", f"dev/{client_id}/#", "$SYS/#", "+/#", "#"):
        assert refused(subscribe(raw, filt)), filt
    raw.close()


def test_a_dollar_client_id_cannot_reach_a_dollar_tree(acl_node):
    """`pattern read %c/#` must not give a client named $SYS the $SYS tree."""
    raw = connected(acl_node.port, V5, "$SYS")
    assert subscribe(raw, "$SYS/#") == [0x87]
    assert subscribe(raw, "dev/$SYS/#") == [1]  # below the first level it is an ordinary name
    raw.close()


def test_wildcards_in_a_publish_topic_are_rejected_by_the_codec(acl_node, cid):
    """`topic write wild/#` would allow the names: a wildcard publish must die in the codec, before ACL."""
    watcher = Paho(acl_node.port, cid + "w", username="watcher")
    watcher.connect()
    watcher.subscribe(f"wild/{cid}/#", 1)
    for topic in (f"wild/{cid}/+", f"wild/{cid}/#"):
        raw = connected(acl_node.port, V5, cid)
        raw.send(P.Publish(topic, b"wild", qos=1, packet_id=1))
        assert raw.closed_by_broker()
        assert not any(isinstance(p, P.Puback) for p in raw.inbox)
        raw.close()
    ok = connected(acl_node.port, V5, cid + "ok")
    assert publish(ok, f"wild/{cid}/fine", b"fine") == 0
    [msg] = watcher.expect(1)  # the wildcard publishes were never routed: this one comes first
    assert msg.payload == b"fine"
    watcher.disconnect()
