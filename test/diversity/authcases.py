"""The auth cases every vmq_auth_acl database must pass: a test module imports them and provides
the fixtures `node` (a Broker running auth_<db> over authdb.ROWS) and `rows` (an object whose
`set_publish_acl(username, acl)` rewrites a row in the database)."""

from __future__ import annotations

import itertools

from authkit import BAD_CREDENTIALS, SUB_REFUSED, V3, V5, connack, connected, subscribe
from broker import wait_until
from clients import Raw

from vmqpy.mqtt import packets as P

_pids = itertools.count(1)
REFUSED_V5 = 0x87


def pub(raw, topic: str, payload: bytes = b"x", qos: int = 1, retain: bool = False) -> int:
    """Publish at QoS 1 or 2; the reason code of the PUBACK or PUBREC."""
    pid = next(_pids) % 0xFFFF + 1
    raw.send(P.Publish(topic, payload, qos=qos, retain=retain, packet_id=pid))
    kind = P.Puback if qos == 1 else P.Pubrec
    while True:
        packet = raw.recv()
        assert packet is not None, "connection closed while waiting for the ack"
        if isinstance(packet, kind):
            return packet.reason_code


def test_register_with_the_right_password(node):
    for version in (V3, V5):
        assert connack(node.port, version, "dev-1", "alice", "alice-pw") == 0


def test_register_m5_with_properties_reaches_the_script(node):
    raw = Raw(node.port, V5)
    try:
        ack = raw.connect("dev-1", username="alice", password=b"alice-pw", properties={
            "user_property": [("site", "lab"), ("site", "roof")], "session_expiry_interval": 60,
            "receive_maximum": 10})
        assert ack is not None and ack.reason_code == 0, ack
        assert pub(raw, "dev/alice/props") == 0
    finally:
        raw.close()


def test_register_wrong_password_or_unknown_user_is_bad_credentials(node):
    for version in (V3, V5):
        assert connack(node.port, version, "dev-1", "alice", "wrong") == BAD_CREDENTIALS[version]
        assert connack(node.port, version, "dev-1", "mallory", "alice-pw") == BAD_CREDENTIALS[version]
        assert connack(node.port, version, "dev-1", "alice", None) != 0


def test_the_default_row_of_client_id_star_serves_any_client(node):
    assert connack(node.port, V5, "any-client-7", "bob", "bob-pw") == 0
    # alice's row is for dev-1 only
    assert connack(node.port, V5, "other", "alice", "alice-pw") == BAD_CREDENTIALS[V5]


def test_publish_acl_with_username_and_client_id_substituted(node):
    raw = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        assert pub(raw, "dev/alice/temp") == 0
        assert pub(raw, "up/dev-1") == 0
        assert pub(raw, "dev/bob/temp") == REFUSED_V5
        assert pub(raw, "up/dev-2") == REFUSED_V5
    finally:
        raw.close()


def test_max_qos_retain_and_payload_size_rules(node):
    raw = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        assert pub(raw, "up/dev-1", qos=2) == REFUSED_V5  # max_qos 1
        assert pub(raw, "dev/alice/x", qos=2) == 0
        assert pub(raw, "noretain/alice", retain=True) == REFUSED_V5
        assert pub(raw, "noretain/alice") == 0
        assert pub(raw, "small/alice", b"12345") == REFUSED_V5  # max_payload_size 4
        assert pub(raw, "small/alice", b"1234") == 0
        assert subscribe(raw, ("cmd/dev-1/+", 1)) == [1]
        assert subscribe(raw, ("cmd/dev-1/+", 2)) == [SUB_REFUSED[V5]]
        assert subscribe(raw, ("cmd/dev-2/+", 0)) == [SUB_REFUSED[V5]]
        assert subscribe(raw, ("dev/alice/#", 2)) == [2]
    finally:
        raw.close()


def test_subscribe_filters_wider_than_the_acl_are_refused(node):
    raw = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        assert subscribe(raw, "dev/+/#") == [SUB_REFUSED[V5]]
        assert subscribe(raw, "#") == [SUB_REFUSED[V5]]
        # bob's filter is refused (whether alice's is granted beside it is the broker's policy)
        assert subscribe(raw, "dev/alice/a", "dev/bob/a")[1] == SUB_REFUSED[V5]
    finally:
        raw.close()


def test_wildcard_usernames_cannot_widen_their_acl(node):
    for user, pw in (("+", "plus-pw"), ("#", "hash-pw"), ("a/b", "slash-pw")):
        raw = connected(node.port, V5, f"wild-{len(pw)}", user, pw)
        try:
            # dev/%u/# with %u = + / # / a/b would read everyone's tree: the entry is dropped instead
            assert subscribe(raw, "dev/+/#") == [SUB_REFUSED[V5]], user
            assert subscribe(raw, "dev/#") == [SUB_REFUSED[V5]], user
            assert pub(raw, "dev/alice/x") == REFUSED_V5, user
        finally:
            raw.close()


def test_injection_usernames_are_just_unknown_users(node):
    for user in ("alice' OR '1'='1", "alice' --", "'; DROP TABLE vmq_auth_acl; --", 'alice" OR "1"="1',
                 "alice\\", "alice%", "?"):
        assert connack(node.port, V5, "dev-1", user, "x' OR '1'='1") == BAD_CREDENTIALS[V5], user
    assert connack(node.port, V5, "dev-1", "alice", "alice-pw") == 0  # the table is still there


def test_the_cache_answers_until_the_client_reconnects(node, rows):
    raw = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        rows.set_publish_acl("alice", [{"pattern": "moved/%u"}])
        assert pub(raw, "dev/alice/x") == 0  # the ACL cached at CONNECT still applies
    finally:
        raw.close()
    # the cache entry goes with the client: the next CONNECT reads the new ACL
    def reconnected_sees_new_acl():
        again = connected(node.port, V5, "dev-1", "alice", "alice-pw")
        try:
            return pub(again, "moved/alice") == 0 and pub(again, "dev/alice/x") == REFUSED_V5
        finally:
            again.close()
    try:
        wait_until(reconnected_sees_new_acl, 10, "the new ACL after reconnecting")
    finally:
        rows.reset()


def test_a_password_that_is_not_utf8_is_refused_quietly(node):
    assert connack(node.port, V5, "dev-1", "alice", b"\xffalice-pw") == 0x87  # nobody said ok
    assert "can't call function" not in node.log_text()
