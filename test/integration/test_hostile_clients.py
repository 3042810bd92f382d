"""Clients that try to hurt the node: too many subscriptions, topics too deep, packets too large, a
subscriber that never reads. The offender is refused, disconnected or has its messages dropped and
counted; the others are served."""

from __future__ import annotations

import socket

import pytest
from broker import wait_until
from clients import Paho, Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


def subscribe(client: Raw, *filters: str, pid: int = 1) -> list[int]:
    client.send(P.Subscribe(pid, [(f, P.SubOpts(0)) for f in filters]))
    ack = client.recv()
    assert isinstance(ack, P.Suback), ack
    return ack.reason_codes


def deep(levels: int) -> str:
    return "/".join(f"l{i}" for i in range(levels))


# -- max_subscriptions_per_client ------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    from broker import Broker

    node = Broker(tmp_path_factory.mktemp("limited"), {"max_subscriptions_per_client": "3"}).start()
    yield node
    node.stop()
    node.cleanup()


@pytest.mark.parametrize("version,refused", [(4, 0x80), (5, R.QUOTA_EXCEEDED)])
def test_filters_beyond_max_subscriptions_per_client_are_refused(limited, cid, version, refused):
    client = Raw(limited.port, version)
    assert client.connect(cid).reason_code == 0
    assert subscribe(client, "q/a", "q/b", "q/c", "q/d") == [0, 0, 0, refused]
    assert subscribe(client, "q/a", "q/e", pid=2) == [0, refused]  # replacing one is allowed, a new one not
    client.send(P.Unsubscribe(3, ["q/b"]))
    assert isinstance(client.recv(), P.Unsuback)
    assert subscribe(client, "q/e", pid=4) == [0]  # room again


def test_refused_subscriptions_are_counted(limited, cid):
    before = limited.metrics()["mqtt_subscribe_quota_exceeded"]
    client = Raw(limited.port)
    client.connect(cid)
    subscribe(client, *(f"c/{i}" for i in range(5)))
    assert limited.metrics()["mqtt_subscribe_quota_exceeded"] == before + 2


# -- topic_max_depth (VerneMQ's default, 10) --------------------------------------------------------
def test_a_publish_deeper_than_topic_max_depth_disconnects_v5_with_malformed(broker, cid):
    sub = Raw(broker.port)
    sub.connect(cid + "-sub")
    assert subscribe(sub, "#") == [0]
    client = Raw(broker.port, 5)
    client.connect(cid)
    client.send(P.Publish(deep(10), b"ten levels"))
    assert sub.recv().payload == b"ten levels"
    client.send(P.Publish(deep(11), b"eleven levels"))
    answer = client.recv()
    assert isinstance(answer, P.Disconnect) and answer.reason_code == R.MALFORMED_PACKET
    assert client.closed_by_broker()


def test_a_v3_publish_deeper_than_topic_max_depth_closes_the_connection(broker, cid):
    client = Raw(broker.port)
    client.connect(cid)
    client.send(P.Publish(deep(2000), b"x", 1, packet_id=1))
    assert client.closed_by_broker()
    assert client.inbox == []  # no PUBACK


@pytest.mark.parametrize("packet", [
    P.Subscribe(1, [("a/b", P.SubOpts(0)), (deep(11), P.SubOpts(0))]),
    P.Unsubscribe(1, [deep(5000)]),
])
def test_a_filter_deeper_than_topic_max_depth_is_malformed(broker, cid, packet):
    client = Raw(broker.port, 5)
    client.connect(cid)
    client.send(packet)
    answer = client.recv()
    assert isinstance(answer, P.Disconnect) and answer.reason_code == R.MALFORMED_PACKET
    assert client.closed_by_broker()


def test_a_will_deeper_than_topic_max_depth_refuses_the_connect(broker, cid):
    client = Raw(broker.port, 5)
    ack = client.connect(cid, will=P.Will(deep(11), b"gone"))
    assert ack.reason_code == R.MALFORMED_PACKET
    assert client.closed_by_broker()


def test_topic_max_depth_is_configurable(make_broker, cid):
    node = make_broker({"topic_max_depth": "0"})  # no limit
    sub = Raw(node.port)
    sub.connect(cid + "-sub")
    assert subscribe(sub, deep(3000)) == [0]
    client = Raw(node.port)
    client.connect(cid)
    client.send(P.Publish(deep(3000), b"deep"))
    assert sub.recv().payload == b"deep"


# -- max_message_size --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 5])
def test_an_oversized_packet_is_refused_from_its_fixed_header(make_broker, cid, version):
    """The node answers as soon as the fixed header announces too much: the body is never sent."""
    node = make_broker({"max_message_size": "1024"})
    client = Raw(node.port, version)
    client.connect(cid)
    frame = encode(P.Publish("big/x", b"x" * (1 << 20)), version)
    client.send(frame[:16])  # the header says 1 MiB; we send 16 bytes and wait
    if version == 5:
        answer = client.recv()
        assert isinstance(answer, P.Disconnect) and answer.reason_code == R.PACKET_TOO_LARGE
    assert client.closed_by_broker()
    assert node.metrics()["mqtt_invalid_msg_size_error"] == 1


# -- a subscriber that never reads -------------------------------------------------------------------
def test_a_subscriber_that_never_reads_has_its_messages_dropped_and_counted(make_broker, cid):
    node = make_broker({"max_online_messages": "100"})
    stuck = Raw(node.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(cid + "-stuck")
    assert subscribe(stuck, "flood/#") == [0]  # and never reads again
    reader = Paho(node.port, cid + "-reader")
    reader.connect()
    reader.subscribe("flood/#", 1)
    pub = Raw(node.port)
    pub.connect(cid + "-pub")
    rounds, per_round, payload = 100, 50, b"p" * 1024  # 5 MB: more than the socket buffers and the queue hold
    for r in range(rounds):
        pub.send(b"".join(encode(P.Publish("flood/x", payload, 1, packet_id=r * per_round + i + 1), 4)
                          for i in range(per_round)))
        for _ in range(per_round):
            assert isinstance(pub.recv(), P.Puback)
        assert len(reader.expect(per_round)) == per_round  # everyone else keeps being served
    n = rounds * per_round
    wait_until(lambda: node.metrics()["queue_message_drop"] > 0, what="drops counted")
    assert node.metrics()["queue_message_drop"] < n
    probe = Raw(node.port)
    assert probe.connect(cid + "-probe").reason_code == 0  # the node still accepts clients
