"""vmq_acl end to end: the rules of one ACL file allow and deny exactly what they say."""

from __future__ import annotations

import pytest
from authkit import SUB_REFUSED, V3, V5, connected, publish, subscribe
from broker import Broker, free_port
from clients import V311, Paho

ACL = """\
# rules above the first user line: everyone
topic read public/#
user alice
topic alice/#
topic write shared/in
user bob
topic read shared/in
user watcher
topic read #
pattern dev/%c/#
pattern read users/%u/inbox
pattern write users/%u/outbox
pattern %m/room/#
"""
DENIED_PUB = 0x87  # v5 PUBACK "not authorized"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Anonymous access on (usernames are taken as given), a second listener with mountpoint tenant1."""
    tenant_port = free_port()
    node = Broker(tmp_path_factory.mktemp("acl"), {
        "listener.tcp.tenant": f"127.0.0.1:{tenant_port}",
        "listener.tcp.tenant.mountpoint": "tenant1",
    }, acl=ACL)
    node.tenant_port = tenant_port
    node.start()
    yield node
    node.stop()
    node.cleanup()


@pytest.mark.parametrize("version", [V3, V5])
def test_rules_before_any_user_apply_to_everyone(node, cid, version):
    for username in (None, "alice", "bob"):
        raw = connected(node.port, version, cid, username)
        assert subscribe(raw, "public/#", "public/a/+") == [1, 1]
        assert subscribe(raw, "private/#") == [SUB_REFUSED[version]]
        raw.close()


@pytest.mark.parametrize("version", [V3, V5])
def test_user_rules_belong_to_that_user(node, cid, version):
    alice = connected(node.port, version, cid + "a", "alice")
    assert subscribe(alice, "alice/#") == [1]
    assert subscribe(alice, "alice/+/c") == [1]  # covered by alice/#
    assert subscribe(alice, "shared/in") == [SUB_REFUSED[version]]  # write only
    assert subscribe(alice, "#") == [SUB_REFUSED[version]]
    bob = connected(node.port, version, cid + "b", "bob")
    assert subscribe(bob, "shared/in") == [1]
    assert subscribe(bob, "alice/#") == [SUB_REFUSED[version]]
    anonymous = connected(node.port, version, cid + "n")
    assert subscribe(anonymous, "alice/#") == [SUB_REFUSED[version]]


@pytest.mark.parametrize("version", [V3, V5])
def test_one_refused_filter_leaves_the_others_granted(node, cid, version):
    alice = connected(node.port, version, cid, "alice")
    assert subscribe(alice, "alice/x", "bob/x", "public/x") == [1, SUB_REFUSED[version], 1]
    publish(connected(node.port, version, cid + "p", "alice"), "alice/x", b"granted")
    assert alice.recv().payload == b"granted"


def test_v5_publish_denied_or_allowed_per_user(node, cid):
    alice = connected(node.port, V5, cid + "a", "alice")
    assert publish(alice, "alice/x") == 0
    assert publish(alice, "shared/in") == 0
    assert publish(alice, "public/x") == DENIED_PUB  # everyone may only read it
    bob = connected(node.port, V5, cid + "b", "bob")
    assert publish(bob, "shared/in") == DENIED_PUB
    assert publish(bob, "alice/x") == DENIED_PUB


def test_pattern_substitutes_the_client_id(node):
    dev = connected(node.port, V5, "dev1")
    assert publish(dev, "dev/dev1/temp") == 0
    assert publish(dev, "dev/dev2/temp") == DENIED_PUB
    assert subscribe(dev, "dev/dev1/#") == [1]
    assert subscribe(dev, "dev/+/#") == [0x87]


def test_pattern_substitutes_the_username(node, cid):
    alice = connected(node.port, V5, cid, "alice")
    assert subscribe(alice, "users/alice/inbox") == [1]
    assert subscribe(alice, "users/bob/inbox") == [0x87]
    assert subscribe(alice, "users/alice/outbox") == [0x87]  # write only
    assert publish(alice, "users/alice/outbox") == 0
    assert publish(alice, "users/alice/inbox") == DENIED_PUB
    anonymous = connected(node.port, V5, cid + "n")  # no username: %u never matches
    assert subscribe(anonymous, "users//inbox") == [0x87]


def test_pattern_substitutes_the_mountpoint(node, cid):
    tenant = connected(node.tenant_port, V5, cid + "t")
    assert publish(tenant, "tenant1/room/a") == 0
    assert publish(tenant, "/room/a") == DENIED_PUB
    assert subscribe(tenant, "tenant1/room/#") == [1]
    default = connected(node.port, V5, cid + "d")  # mountpoint "": %m/room/# is /room/#
    assert publish(default, "/room/a") == 0
    assert publish(default, "tenant1/room/a") == DENIED_PUB


def test_mountpoints_keep_tenants_apart(node, cid):
    tenant_sub = Paho(node.tenant_port, cid + "ts")
    tenant_sub.connect()
    assert tenant_sub.subscribe(f"tenant1/room/{cid}", 1) == [1]
    watcher = Paho(node.port, cid + "w", username="watcher")  # reads everything in mountpoint ""
    watcher.connect()
    watcher.subscribe(f"tenant1/room/{cid}", 1)
    watcher.subscribe(f"/room/{cid}", 1)
    tenant_pub = connected(node.tenant_port, V5, cid + "tp")
    default_pub = connected(node.port, V5, cid + "dp")
    assert publish(tenant_pub, f"tenant1/room/{cid}", b"inside") == 0  # acked once routed
    assert publish(default_pub, f"/room/{cid}", b"outside") == 0
    assert [m.payload for m in tenant_sub.expect(1)] == [b"inside"]
    # Had the default mountpoint seen tenant1's message, it would have come first.
    assert [(m.topic, m.payload) for m in watcher.expect(1)] == [(f"/room/{cid}", b"outside")]


@pytest.mark.parametrize("version", [V311, 5])
def test_denied_publish_never_reaches_a_subscriber(node, cid, version):
    """v3: the broker acks (v3 has no code) and drops it; v5: PUBACK 0x87. Either way the
    subscriber gets only the allowed message that the same publisher sent afterwards."""
    watcher = Paho(node.port, cid + "w", username="watcher")
    watcher.connect()
    watcher.subscribe(f"public/{cid}", 1)
    watcher.subscribe(f"alice/{cid}", 1)
    alice = connected(node.port, V3 if version == V311 else V5, cid + "a", "alice")
    assert publish(alice, f"public/{cid}", b"denied") == (0 if version == V311 else DENIED_PUB)
    assert publish(alice, f"alice/{cid}", b"allowed") == 0
    [msg] = watcher.expect(1)
    assert (msg.topic, msg.payload) == (f"alice/{cid}", b"allowed")
    watcher.disconnect()
