"""Publish/subscribe through a real node: QoS levels, wildcards, retained, overlap."""

from __future__ import annotations

import pytest
from clients import V5, V311, Paho, Raw

from vmqpy.mqtt import packets as P


@pytest.mark.parametrize("version", [V311, V5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip(broker, cid, version, qos):
    sub = Paho(broker.port, cid + "s", version)
    sub.connect()
    assert sub.subscribe(f"rt/{version}/{qos}/#", qos)
    pub = Paho(broker.port, cid + "p", version)
    pub.connect()
    for i in range(20):
        pub.publish(f"rt/{version}/{qos}/x", f"m{i}", qos)
    got = sub.expect(20)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(20)]
    assert all(m.qos == qos and not m.retain for m in got)
    sub.disconnect()
    pub.disconnect()


def test_outgoing_qos_is_min_of_publish_and_subscription(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe("minq/a", 1)
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("minq/a", "two", 2)
    pub.publish("minq/a", "zero", 0)
    assert [(m.payload, m.qos) for m in sub.expect(2)] == [(b"two", 1), (b"zero", 0)]


def test_upgrade_outgoing_qos(make_broker, cid):
    node = make_broker({"upgrade_outgoing_qos": "on"})
    sub = Paho(node.port, cid + "s")
    sub.connect()
    sub.subscribe("up/a", 2)
    pub = Paho(node.port, cid + "p")
    pub.connect()
    pub.publish("up/a", "x", 0)
    assert sub.expect(1)[0].qos == 2


def test_wildcards_and_dollar_topics(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe([("#", 0), ("+/sys", 0)])
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("$SYS/x", "hidden", 1)
    pub.publish("$SYS/sys", "hidden", 1)
    pub.publish("wild/sys", "seen", 1)
    got = sub.expect(1)
    assert got[0].topic == "wild/sys"
    sub.expect_none()


def test_dollar_topic_matched_by_explicit_filter(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe("$SYS/#", 0)
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("$SYS/y", "shown", 1)
    assert sub.expect(1)[0].payload == b"shown"


def test_overlapping_subscriptions_deliver_once_at_highest_qos(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe([("ov/#", 0), ("ov/+/c", 2), ("ov/b/c", 1)])
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("ov/b/c", "once", 2)
    m = sub.expect(1)[0]
    assert (m.payload, m.qos) == (b"once", 2)
    sub.expect_none()


def test_retained_set_replace_clear(broker, cid):
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("ret/a", "one", 1, retain=True)
    pub.publish("ret/a", "two", 1, retain=True)
    pub.publish("ret/b", "bee", 1, retain=True)  # QoS 1: awaited, so stored before the subscribe
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe("ret/+", 1)
    got = sorted((m.topic, m.payload, m.retain) for m in sub.expect(2))
    assert got == [("ret/a", b"two", True), ("ret/b", b"bee", True)]
    pub.publish("ret/a", "", 1, retain=True)  # an empty retained payload clears
    live = sub.expect(1)[0]
    assert (live.topic, live.payload) == ("ret/a", b"")
    sub2 = Paho(broker.port, cid + "s2")
    sub2.connect()
    sub2.subscribe("ret/#", 1)
    assert [(m.topic, m.payload) for m in sub2.expect(1)] == [("ret/b", b"bee")]
    sub2.expect_none()


def test_live_message_to_existing_subscriber_has_retain_flag_cleared(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe("rflag/x", 0)
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("rflag/x", "r", 1, retain=True)
    assert sub.expect(1)[0].retain is False


def test_qos2_inbound_resend_routes_once(broker, cid):
    sub = Paho(broker.port, cid + "s")
    sub.connect()
    sub.subscribe("q2/once", 2)
    raw = Raw(broker.port)
    assert raw.connect(cid + "raw").reason_code == 0
    publish = P.Publish("q2/once", b"exactly", qos=2, packet_id=7)
    raw.send(publish)
    assert isinstance(raw.recv(), P.Pubrec)
    publish.dup = True
    raw.send(publish)  # the client did not see PUBREC and resends
    assert isinstance(raw.recv(), P.Pubrec)
    raw.send(P.Pubrel(7))
    assert isinstance(raw.recv(), P.Pubcomp)
    assert sub.expect(1)[0].payload == b"exactly"
    sub.expect_none()
    # After PUBREL the id is free again: a new message with id 7 is routed.
    raw.send(P.Publish("q2/once", b"again", qos=2, packet_id=7))
    assert isinstance(raw.recv(), P.Pubrec)
    raw.send(P.Pubrel(7))
    assert isinstance(raw.recv(), P.Pubcomp)
    assert sub.expect(1)[0].payload == b"again"


def test_mountpoints_isolate_topic_trees(make_broker, cid):
    from broker import free_port

    other = free_port()
    node = make_broker({"listener.tcp.tenant": f"127.0.0.1:{other}",
                        "listener.tcp.tenant.mountpoint": "tenant1/"})
    plain = Paho(node.port, cid + "plain")
    plain.connect()
    plain.subscribe("#", 0)
    tenant = Paho(other, cid + "tenant")
    tenant.connect()
    tenant.subscribe("#", 0)
    tenant_pub = Paho(other, cid + "tp")
    tenant_pub.connect()
    tenant_pub.publish("a/b", "inside", 1)
    assert tenant.expect(1)[0].topic == "a/b"
    plain.expect_none()
    plain_pub = Paho(node.port, cid + "pp")
    plain_pub.connect()
    plain_pub.publish("a/b", "outside", 1)
    assert plain.expect(1)[0].payload == b"outside"
    tenant.expect_none()
