"""MQTT 5 sessions: Clean Start, Session Expiry, session present, assigned ids, Server Keep Alive,
server-initiated DISCONNECT with reason codes and strings, wills with delay and properties."""

from __future__ import annotations

import time

import pytest
from broker import wait_until
from clients import CONNECT_PROPS, DISCONNECT_PROPS, V5, WILL_PROPS, Paho, Raw, props

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R


def persistent(port: int, cid: str, expiry: int, clean: bool = False) -> tuple[Paho, bool]:
    c = Paho(port, cid, V5, clean=clean)
    _, flags, _ = c.connect(props(CONNECT_PROPS, SessionExpiryInterval=expiry))
    return c, flags.session_present


def publish_one(port: int, cid: str, topic: str, payload: str) -> None:
    pub = Paho(port, cid + "-pub", V5)
    pub.connect()
    pub.publish(topic, payload, 1)
    pub.disconnect()


# -- Clean Start and Session Expiry --------------------------------------------------
def test_session_present_and_queued_messages_within_expiry(broker, cid):
    c, present = persistent(broker.port, cid, 60, clean=True)
    assert not present
    c.subscribe("s5/keep", 1)
    c.disconnect()
    publish_one(broker.port, cid, "s5/keep", "while-away")
    c, present = persistent(broker.port, cid, 60)
    assert present
    assert c.expect(1)[0].payload == b"while-away"


def test_session_expiry_zero_ends_the_session_at_disconnect(broker, cid):
    c, _ = persistent(broker.port, cid, 0, clean=True)
    c.subscribe("s5/zero", 1)
    c.disconnect()
    c, present = persistent(broker.port, cid, 60)
    assert not present


def test_session_expires_after_its_interval(broker, cid):
    c, _ = persistent(broker.port, cid, 1, clean=True)
    c.subscribe("s5/exp", 1)
    c.disconnect()
    time.sleep(1.5)  # the passing of the expiry interval is what is tested
    publish_one(broker.port, cid, "s5/exp", "lost")
    c, present = persistent(broker.port, cid, 60)
    assert not present
    c.expect_none()


def test_session_expiry_0xffffffff_keeps_the_session(broker, cid):
    c, _ = persistent(broker.port, cid, 0xFFFFFFFF, clean=True)
    c.subscribe("s5/never", 1)
    c.disconnect()
    c, present = persistent(broker.port, cid, 0xFFFFFFFF)
    assert present


def test_disconnect_can_shorten_session_expiry_to_zero(broker, cid):
    c, _ = persistent(broker.port, cid, 3600, clean=True)
    c.subscribe("s5/short", 1)
    c.disconnect(props(DISCONNECT_PROPS, SessionExpiryInterval=0))
    _, present = persistent(broker.port, cid, 3600)
    assert not present


def test_disconnect_cannot_set_expiry_after_zero_in_connect(broker, cid):
    raw = Raw(broker.port, 5)
    assert raw.connect(cid).reason_code == 0
    raw.send(P.Disconnect(0, {"session_expiry_interval": 30}))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.PROTOCOL_ERROR


def test_clean_start_discards_the_existing_session(broker, cid):
    c, _ = persistent(broker.port, cid, 3600, clean=True)
    c.subscribe("s5/wipe", 1)
    c.disconnect()
    c, present = persistent(broker.port, cid, 3600, clean=True)
    assert not present
    publish_one(broker.port, cid, "s5/wipe", "unsubscribed")
    c.expect_none()


def test_assigned_client_identifier(broker):
    c = Paho(broker.port, "", V5)
    _, _, connack_props = c.connect()
    assigned = connack_props.AssignedClientIdentifier
    assert assigned.startswith("vmq-")
    c.subscribe("s5/assigned", 0)
    c.publish("s5/assigned", "me")
    assert c.expect(1)[0].payload == b"me"


# -- Server Keep Alive and server-initiated DISCONNECT ----------------------------------
def test_server_keep_alive_caps_the_clients_keep_alive(make_broker, cid):
    node = make_broker({"max_keepalive": "1"})
    raw = Raw(node.port, 5)
    ack = raw.connect(cid, keepalive=600)
    assert ack.properties["server_keep_alive"] == 1
    started = time.monotonic()
    assert raw.closed_by_broker()
    assert 1.4 <= time.monotonic() - started < 5
    assert raw.inbox[-1].reason_code == R.KEEP_ALIVE_TIMEOUT
    assert raw.inbox[-1].properties["reason_string"]
    assert "server_keep_alive" not in (Raw(node.port, 5).connect(cid + "ok", keepalive=1).properties or {})


def test_server_keep_alive_answers_a_client_asking_for_none(make_broker, cid):
    node = make_broker({"max_keepalive": "30"})
    assert Raw(node.port, 5).connect(cid, keepalive=0).properties["server_keep_alive"] == 30


@pytest.mark.parametrize("keepalive", [0, 31])
def test_max_keepalive_refuses_an_mqtt3_client_outside_it(make_broker, cid, keepalive):
    node = make_broker({"max_keepalive": "30"})
    assert Raw(node.port, 4).connect(cid, keepalive=keepalive).reason_code == R.IDENTIFIER_REJECTED
    assert Raw(node.port, 4).connect(cid, keepalive=30).reason_code == 0


def test_takeover_disconnect_has_reason_code_and_string(broker, cid):
    first = Raw(broker.port, 5)
    first.connect(cid)
    Raw(broker.port, 5).connect(cid)
    assert first.closed_by_broker()
    last = first.inbox[-1]
    assert last.reason_code == R.SESSION_TAKEN_OVER and "took over" in last.properties["reason_string"]


# -- wills -----------------------------------------------------------------------------
def watch(port: int, cid: str, topic: str) -> Paho:
    w = Paho(port, cid + "-w", V5)
    w.connect()
    w.subscribe(topic, 1)
    return w


def will_client(port: int, cid: str, topic: str, delay: int, expiry: int) -> Paho:
    c = Paho(port, cid, V5, clean=True).will(topic, b"will", 1, properties=props(WILL_PROPS, WillDelayInterval=delay))
    c.connect(props(CONNECT_PROPS, SessionExpiryInterval=expiry))
    return c


def test_will_delay_publishes_after_the_delay(broker, cid):
    watcher = watch(broker.port, cid, "w5/delay")
    will_client(broker.port, cid, "w5/delay", 1, 60).drop()
    dropped = time.monotonic()
    assert watcher.expect(1)[0].payload == b"will"
    assert time.monotonic() - dropped >= 0.9


def test_will_cancelled_when_the_session_resumes_within_the_delay(broker, cid):
    watcher = watch(broker.port, cid, "w5/cancel")
    will_client(broker.port, cid, "w5/cancel", 2, 60).drop()
    back, present = persistent(broker.port, cid, 60)
    assert present
    time.sleep(2.5)  # past the will delay: the will must not come
    publish_one(broker.port, cid, "w5/cancel", "marker")
    assert watcher.expect(1)[0].payload == b"marker"


def test_will_sent_at_session_end_when_earlier_than_the_delay(broker, cid):
    watcher = watch(broker.port, cid, "w5/end")
    will_client(broker.port, cid, "w5/end", 3600, 1).drop()
    assert watcher.expect(1, timeout=5)[0].payload == b"will"


def test_will_sent_when_a_clean_start_ends_the_session_within_the_delay(broker, cid):
    watcher = watch(broker.port, cid, "w5/clean")
    will_client(broker.port, cid, "w5/clean", 3600, 3600).drop()
    wait_until(lambda: Paho(broker.port, cid, V5, clean=True).connect(), what="reconnect")
    assert watcher.expect(1, timeout=5)[0].payload == b"will"


def test_will_sent_when_a_clean_start_takes_over_a_live_connection(broker, cid):
    """The old connection is still open when the Clean Start one arrives (takeover, not EOF)."""
    watcher = watch(broker.port, cid, "w5/takeover")
    old = will_client(broker.port, cid, "w5/takeover", 3600, 3600)
    Paho(broker.port, cid, V5, clean=True).connect()
    assert watcher.expect(1, timeout=5)[0].payload == b"will"
    old.drop()


def test_will_properties_are_passed_through(broker, cid):
    watcher = watch(broker.port, cid, "w5/props")
    wp = props(WILL_PROPS, WillDelayInterval=0, ContentType="text/plain", ResponseTopic="w5/reply",
               CorrelationData=b"\x01\x02", PayloadFormatIndicator=1, MessageExpiryInterval=300,
               UserProperty=[("k", "1"), ("a", "2"), ("k", "3")])
    c = Paho(broker.port, cid, V5).will("w5/props", b"will", 1, properties=wp)
    c.connect()
    c.drop()
    m = watcher.expect(1)[0]
    p = m.properties
    assert (p.ContentType, p.ResponseTopic, p.CorrelationData, p.PayloadFormatIndicator) == (
        "text/plain", "w5/reply", b"\x01\x02", 1)
    assert p.UserProperty == [("k", "1"), ("a", "2"), ("k", "3")]
    assert 290 <= p.MessageExpiryInterval <= 300
    assert not hasattr(p, "WillDelayInterval")


def test_disconnect_with_will_message_publishes_the_will(broker, cid):
    watcher = watch(broker.port, cid, "w5/dww")
    raw = Raw(broker.port, 5)
    raw.connect(cid, will=P.Will("w5/dww", b"will", 1))
    raw.send(P.Disconnect(R.DISCONNECT_WITH_WILL_MESSAGE))
    assert watcher.expect(1)[0].payload == b"will"
