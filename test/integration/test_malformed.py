"""Hostile and malformed input: the right reason code, one log line, nobody else affected."""

from __future__ import annotations

import socket

import pytest
from clients import Paho, Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R


def _v5_connected(port: int, cid: str) -> Raw:
    raw = Raw(port, version=5)
    assert raw.connect(cid).reason_code == 0
    return raw


@pytest.mark.parametrize("frame, reason", [
    (b"\x30\xff\xff\xff\xff\x7f", R.MALFORMED_PACKET),            # 5-byte remaining length
    (b"\x32\x08\x00\x03a/b\x00\x00\x00", R.PROTOCOL_ERROR),     # QoS 1 with packet id 0
    (b"\x30\x06\x00\x03a/+\x00", R.MALFORMED_PACKET),             # wildcard in a PUBLISH topic
    (b"\x36\x07\x00\x03a/b\x00\x01", R.MALFORMED_PACKET),         # QoS 3
    (b"\x80\x03\x00\x01\x00", R.MALFORMED_PACKET),                # SUBSCRIBE with reserved flags 0000
    (b"\x30\x05\x00\x03\xff\xfe\xfd", R.MALFORMED_PACKET),        # invalid UTF-8 topic
    (b"\x30\x05\x00\x03a\x00b", R.MALFORMED_PACKET),              # NUL in topic
])
def test_v5_client_gets_disconnect_with_reason(broker, cid, frame, reason):
    raw = _v5_connected(broker.port, cid)
    raw.send(frame)
    assert raw.closed_by_broker()
    disconnect = raw.inbox[-1]
    assert isinstance(disconnect, P.Disconnect)
    assert disconnect.reason_code == reason


def test_v3_client_is_disconnected_on_malformed_packet(broker, cid):
    raw = Raw(broker.port)
    raw.connect(cid)
    raw.send(b"\x30\x05\x00\x03a/#")
    assert raw.closed_by_broker()
    assert raw.inbox == []


def test_packet_too_large_gets_0x95(make_broker, cid):
    node = make_broker({"max_message_size": "1024"})
    raw = _v5_connected(node.port, cid)
    raw.send(P.Publish("big", b"x" * 2000, qos=0))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.PACKET_TOO_LARGE


def test_first_packet_not_connect_is_closed(broker):
    raw = Raw(broker.port)
    raw.send(P.Pingreq())
    assert raw.closed_by_broker()


def test_second_connect_is_a_protocol_error(broker, cid):
    raw = _v5_connected(broker.port, cid)
    raw.send(P.Connect(cid, proto_level=5))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.PROTOCOL_ERROR


def test_malformed_connect_v5_gets_connack_reason(broker):
    raw = Raw(broker.port, version=5)
    # CONNECT v5 whose properties length runs past the packet.
    raw.send(b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x09\x00\x00")
    assert raw.closed_by_broker()
    assert isinstance(raw.inbox[-1], P.Connack)
    assert raw.inbox[-1].reason_code == R.MALFORMED_PACKET


def test_burst_of_malformed_connections_leaves_good_client_unaffected(broker, cid):
    good_sub = Paho(broker.port, cid + "s")
    good_sub.connect()
    good_sub.subscribe("good/#", 1)
    good_pub = Paho(broker.port, cid + "p")
    good_pub.connect()
    garbage = [b"\x30\xff\xff\xff\xff\x7f", b"\x10\x02\x00\x00", b"\xf0\x00", b"GET / HTTP/1.1\r\n\r\n",
               b"\x10\x0c\x00\x04MQTT\x09\x02\x00\x3c\x00\x00"]
    socks = []
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
        s.sendall(garbage[i % len(garbage)])
        socks.append(s)
        if i % 10 == 0:
            good_pub.publish("good/x", f"during-{i}", 1)
    for s in socks:
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        s.close()
    good_pub.publish("good/x", "after", 1)
    payloads = [m.payload for m in good_sub.expect(11)]
    assert payloads == [f"during-{i}".encode() for i in range(0, 100, 10)] + [b"after"]
    assert broker.ping()
    assert "reason 0x" in broker.log_text()
