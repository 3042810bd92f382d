"""Multiple sessions per client id, publish rate limits and overload protection."""

from __future__ import annotations

import time

import pytest
from broker import wait_until
from clients import Paho, Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


def subscribed(port: int, cid: str, topic: str, qos: int = 1) -> Raw:
    raw = Raw(port, 5)
    assert raw.connect(cid).reason_code == 0
    raw.send(P.Subscribe(1, [(topic, P.SubOpts(qos))]))
    assert isinstance(raw.recv(), P.Suback)
    return raw


# -- multiple sessions per client id --------------------------------------------------------
def test_multiple_sessions_fanout_delivers_to_every_session(make_broker, cid):
    node = make_broker({"allow_multiple_sessions": "on", "queue_deliver_mode": "fanout"})
    first = subscribed(node.port, cid, "multi/f")
    second = Raw(node.port, 5)
    assert second.connect(cid, clean=True).reason_code == 0  # joins, does not take over
    pub = Paho(node.port, cid + "-pub")
    pub.connect()
    pub.publish("multi/f", "both", 1)
    assert first.recv().payload == b"both"
    assert second.recv().payload == b"both"


def test_multiple_sessions_balance_delivers_each_message_once(make_broker, cid):
    node = make_broker({"allow_multiple_sessions": "on", "queue_deliver_mode": "balance"})
    sessions = [subscribed(node.port, cid, "multi/b")]
    sessions.append(Raw(node.port, 5))
    sessions[1].connect(cid)
    pub = Paho(node.port, cid + "-pub")
    pub.connect()
    for i in range(10):
        pub.publish("multi/b", str(i), 0)
    got: list[list[bytes]] = [[], []]
    for i, s in enumerate(sessions):
        try:
            while True:
                got[i].append(s.recv(timeout=0.5).payload)
        except TimeoutError:
            pass
    assert sorted(got[0] + got[1], key=int) == [str(i).encode() for i in range(10)]
    assert got[0] and got[1]


def test_without_multiple_sessions_the_second_connection_takes_over(make_broker, cid):
    node = make_broker({"allow_multiple_sessions": "off"})
    first = subscribed(node.port, cid, "multi/t")
    Raw(node.port, 5).connect(cid)
    assert first.closed_by_broker()


# -- max_message_rate ---------------------------------------------------------------------------
def test_publishes_above_max_message_rate_are_throttled_not_dropped(make_broker, cid):
    node = make_broker({"max_message_rate": "10"})
    sub = Paho(node.port, cid + "s")
    sub.connect()
    sub.subscribe("rate/x", 0)
    raw = Raw(node.port)
    raw.connect(cid)
    started = time.monotonic()
    raw.send(b"".join(encode(P.Publish("rate/x", str(i).encode()), 4) for i in range(25)))  # one burst
    got = sub.expect(25)
    assert [m.payload for m in got] == [str(i).encode() for i in range(25)]
    assert time.monotonic() - started >= 1.8  # 25 at 10/s: two pauses of up to a second
    _, out = node.admin("metrics", "show")
    assert "counter.mqtt_publish_throttled = 2" in out


# -- overload protection ---------------------------------------------------------------------------
@pytest.fixture
def overloaded(make_broker, cid):
    """A node over overload.max_queued_messages: a subscriber that never acks holds 60 messages."""
    node = make_broker({"overload.max_queued_messages": "50", "max_inflight_messages": "1"})
    slow = subscribed(node.port, cid + "-slow", "ol/#")
    pub = Paho(node.port, cid + "-pub")
    pub.connect()
    for i in range(60):
        pub.publish("ol/q1", str(i), 1)
    return node, slow, pub


def test_overloaded_node_refuses_new_connections_with_server_busy(overloaded, cid):
    node, _, _ = overloaded
    ack = wait_until(lambda: (a := Raw(node.port, 5).connect(cid + "-v5")).reason_code and a, what="busy")
    assert ack.reason_code == R.SERVER_BUSY
    assert Raw(node.port, 4).connect(cid + "-v3").reason_code == R.SERVER_UNAVAILABLE_V3
    _, out = node.admin("metrics", "show")
    assert "counter.overload_connect_refused = 0" not in out


def test_overloaded_node_sheds_qos0_to_slow_consumers_first(overloaded, cid):
    node, slow, pub = overloaded
    wait_until(lambda: Raw(node.port, 5).connect(cid + "-probe").reason_code, what="overload")
    for i in range(10):
        pub.publish("ol/q0", f"q0-{i}", 0)
    pub.publish("ol/q1", "last", 1)
    got = []
    while len(got) < 61:
        p = slow.recv()
        got.append(p.payload)
        if p.qos:
            slow.send(P.Puback(p.packet_id))
    assert got[-1] == b"last" and not any(g.startswith(b"q0-") for g in got)
    _, out = node.admin("metrics", "show")
    assert "counter.queue_message_shed = 10" in out


def test_overloaded_node_refuses_v5_qos1_publishes_with_quota_exceeded(make_broker, cid):
    node = make_broker({"overload.max_queued_messages": "50", "max_inflight_messages": "1"})
    pub = Raw(node.port, 5)
    assert pub.connect(cid + "-v5pub").reason_code == 0  # before the overload
    slow = subscribed(node.port, cid + "-slow", "ol/#")  # never acks: its queue holds what follows
    for i in range(60):
        pub.send(P.Publish("ol/q1", str(i).encode(), qos=1, packet_id=i + 1))
        assert pub.recv().reason_code == 0
    wait_until(lambda: Raw(node.port, 5).connect(cid + "-probe").reason_code, what="overload")
    pub.send(P.Publish("ol/q1", b"refused", qos=1, packet_id=99))
    ack = pub.recv()
    assert (type(ack), ack.packet_id, ack.reason_code) == (P.Puback, 99, R.QUOTA_EXCEEDED)
    _, out = node.admin("metrics", "show")
    assert "counter.overload_publish_refused = 1" in out
    slow.close()


# -- a subscriber that stops reading --------------------------------------------------------------
def test_subscriber_that_stops_reading_holds_up_neither_publisher_nor_others(make_broker, cid):
    node = make_broker({"max_online_messages": "100"})
    slow = subscribed(node.port, cid + "-slow", "bp/#", 0)
    fast = subscribed(node.port, cid + "-fast", "bp/fast", 0)
    pub = Raw(node.port, 5)
    assert pub.connect(cid + "-pub").reason_code == 0
    # 32 MiB: far more than the socket buffers between the broker and `slow` hold.
    pub.send(b"".join(encode(P.Publish("bp/bulk", b"%06d" % i + bytes(16384)), 5) for i in range(2000)))
    pub.send(P.Publish("bp/fast", b"ping"))
    assert fast.recv().payload == b"ping"
    seqs = []
    try:
        while (p := slow.recv(timeout=2)) is not None:
            if p.topic == "bp/bulk":
                seqs.append(int(p.payload[:6]))
    except TimeoutError:
        pass
    # What the queue took arrives in order; beyond max_online_messages it dropped (fifo: the newest).
    assert seqs[:100] == list(range(100)) and seqs == sorted(seqs) and len(seqs) < 2000
    _, out = node.admin("metrics", "show")
    assert "counter.queue_message_drop = 0" not in out
