"""Hostile and malformed input: the right reason code, one log line, nobody else affected."""

from __future__ import annotations

import random
import socket

import codeckit
import pytest
from clients import Paho, Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


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


# --- SUBSCRIBE / UNSUBSCRIBE whose properties or payload do not fit the packet ------------------------------

def _frame(b0: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((b0, len(body))) + body


_PID = b"\x00\x01"
# (what is wrong, SUBSCRIBE body, UNSUBSCRIBE body): each a Malformed Packet in v5 (spec 1.5.5, 2.2.2, 3.8.3).
_OVERRUNS = [
    ("property length beyond the remaining length", _PID + b"\x7f", _PID + b"\x7f"),
    ("properties overrun the first filter", _PID + b"\x05\x00\x01a\x00", _PID + b"\x05\x00\x01a"),
    ("property value cut by the property length", _PID + b"\x02\x26\x00\x00\x01a\x00", _PID + b"\x02\x26\x00\x00\x01a"),
    ("subscription identifier cut", _PID + b"\x02\x0b\xff\x00\x01a\x00", None),
    ("no property length", _PID, _PID),
    ("topic filter length past the end", _PID + b"\x00\x00\x09ab", _PID + b"\x00\x00\x09ab"),
    ("second topic filter cut", _PID + b"\x00\x00\x01a\x01\x00\x05b", _PID + b"\x00\x00\x01a\x00\x05b"),
    ("missing subscription options", _PID + b"\x00\x00\x01a", None),
    ("missing options of the second filter", _PID + b"\x00\x00\x01a\x01\x00\x01b", None),
    ("topic filter length cut in half", _PID + b"\x00\x00", _PID + b"\x00\x00"),
]
_SHAPES = [pytest.param(0x82, sub, id=f"SUBSCRIBE {why}") for why, sub, _ in _OVERRUNS] + [
    pytest.param(0xA2, unsub, id=f"UNSUBSCRIBE {why}") for why, _, unsub in _OVERRUNS if unsub is not None]


def _no_traceback(node) -> None:
    text = node.log_text()
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]


@pytest.mark.parametrize("b0, body", _SHAPES)
def test_v5_overrun_subscribe_and_unsubscribe_are_malformed(broker, cid, b0, body):
    raw = _v5_connected(broker.port, cid)
    raw.send(_frame(b0, body))
    assert raw.closed_by_broker()
    assert [type(p) for p in raw.inbox] == [P.Disconnect], raw.inbox  # no SUBACK / UNSUBACK first
    assert raw.inbox[0].reason_code == R.MALFORMED_PACKET
    _no_traceback(broker)


@pytest.mark.parametrize("b0", [0x82, 0xA2], ids=["SUBSCRIBE", "UNSUBSCRIBE"])
def test_v5_subscribe_and_unsubscribe_without_payload_are_protocol_errors(broker, cid, b0):
    """No filter at all is well formed but forbidden: a Protocol Error (spec 3.8.3-2, 3.10.3-2)."""
    raw = _v5_connected(broker.port, cid)
    raw.send(_frame(b0, _PID + b"\x00"))
    assert raw.closed_by_broker()
    assert [(type(p), p.reason_code) for p in raw.inbox] == [(P.Disconnect, R.PROTOCOL_ERROR)]
    _no_traceback(broker)


@pytest.mark.parametrize("b0, body", [
    (0x82, _PID + b"\x00\x09ab"), (0x82, _PID + b"\x00\x01a"), (0x82, _PID), (0xA2, _PID + b"\x00\x09ab"),
], ids=["SUBSCRIBE filter past the end", "SUBSCRIBE no QoS byte", "SUBSCRIBE empty", "UNSUBSCRIBE filter cut"])
def test_v311_overrun_subscribe_and_unsubscribe_close(broker, cid, b0, body):
    raw = Raw(broker.port)
    raw.connect(cid)
    raw.send(_frame(b0, body))
    assert raw.closed_by_broker()
    assert raw.inbox == []
    _no_traceback(broker)


def _until_pong_or_close(raw: Raw) -> tuple[bool, list]:
    """(whether the node answered the PINGREQ sent last or closed the connection, what came before)."""
    got = []
    try:
        while (p := raw.recv()) is not None:
            if isinstance(p, P.Pingresp):
                return True, got
            got.append(p)
    except ConnectionResetError:
        pass
    return False, got


def test_mutated_packets_get_the_specs_answer_and_no_traceback(make_broker):
    """Valid packets of every type with random byte edits (test/codeckit.py, as bench/fuzz starts
    from), each sent on its own connection, after a CONNECT or as its first bytes, and followed
    by a PINGREQ: whatever the decoder refuses closes the connection (v5: DISCONNECT, or CONNACK
    before CONNECT is done, with an error reason code first), what it accepts is answered or
    refused by the broker, and nothing reaches the log as a traceback."""
    node = make_broker()
    rnd = random.Random(15)
    tried = refused = 0
    for k, data in enumerate(codeckit.mutants(rnd, 2000)):
        r = codeckit.Recipe.parse(data)
        outcome = codeckit.check(data)
        if not r.server or r.limit or outcome.buffered:  # a frame still incomplete: the node waits for it
            continue
        error = outcome.error
        version = r.version if r.prefix else outcome.version or 4
        raw = Raw(node.port, version=version)
        if r.prefix:
            assert raw.connect(f"mut-{k}").reason_code == 0
        raw.send(r.stream + encode(P.Pingreq(), version))
        answered, got = _until_pong_or_close(raw)
        raw.close()
        tried += 1
        if error is not None:
            refused += 1
            assert not answered, (data, error)
            if version == 5 and (r.prefix or error[0] != "UnsupportedProtocolVersion"):
                assert isinstance(got[-1], P.Disconnect | P.Connack) and got[-1].reason_code >= 0x80, \
                    (data, error, got)
    assert tried > 500 and refused > 200, (tried, refused)
    assert node.ping()
    _no_traceback(node)
