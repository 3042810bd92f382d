"""vmqpy.mqtt.codec: round trips, incremental decoding, validation, and cross-checks against paho-mqtt."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vmqpy.mqtt import codec, reasons
from vmqpy.mqtt.codec import (
    Decoder,
    MalformedPacket,
    MQTTError,
    PacketTooLarge,
    ProtocolError,
    UnsupportedProtocolVersion,
    decode_properties,
    encode,
    encode_properties,
    publish_frame,
)
from vmqpy.mqtt.packets import (
    PUBLISH,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubOpts,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from vmqpy.mqtt.properties import PROPERTIES, WILL

VERSIONS = (3, 4, 5)
COMPILED_SCAN = codec._scan  # None when vmqpy/mqtt/_speedups.c was not built


@pytest.fixture(autouse=True, params=["compiled", "python"])
def decoder_loop(request, monkeypatch):
    """Every test here runs with the compiled twin of Decoder.feed's loop and with Python alone."""
    if request.param == "compiled":
        if COMPILED_SCAN is None:
            pytest.skip("vmqpy.mqtt._speedups is not built")
        monkeypatch.setattr(codec, "_scan", COMPILED_SCAN)
    else:
        monkeypatch.setattr(codec, "_scan", None)
    return request.param

NAME = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
UP = [("k", "v"), ("k", "v2"), ("ключ", "значение")]  # repeated keys keep wire order


def frame(b0: int, body: bytes) -> bytes:
    """A hand-built frame (independent of the codec's encoder)."""
    rl, n = bytearray(), len(body)
    while True:
        n, d = n >> 7, n & 0x7F
        rl.append(d | (0x80 if n else 0))
        if not n:
            return bytes([b0]) + bytes(rl) + body


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def connected(version: int, **kw) -> Decoder:
    """A server-side decoder that has decoded a CONNECT."""
    dec = Decoder(**kw)
    dec.feed(encode(Connect("c"), version))
    return dec


def props(v: int, **p) -> dict | None:
    return p if v == 5 else None


def connects(v: int) -> list[Connect]:
    will_props = props(v, will_delay_interval=30, payload_format_indicator=1, message_expiry_interval=60,
                       content_type="text/plain", response_topic="r/t", correlation_data=b"\x00\x01",
                       user_property=UP)
    conn_props = props(v, session_expiry_interval=3600, receive_maximum=20, maximum_packet_size=65536,
                       topic_alias_maximum=10, request_response_information=1,
                       request_problem_information=0, authentication_method="SCRAM",
                       authentication_data=b"\x01\x02", user_property=UP)
    base = {"proto_level": v, "proto_name": NAME[v]}
    return [
        Connect("", clean_start=True, keepalive=0, **base),
        Connect("client-é", clean_start=False, keepalive=65535, username="user", password=b"\x00pw",
                will=Will("will/tópic", b"\xffbye", 2, True, will_props), properties=conn_props, **base),
        Connect("c", will=Will("w", b"", 1, False, None), username="", **base),
        Connect("bridge", bridge=True, **base) if v != 5 else Connect("p", password=b"x", **base),
    ]


def client_packets(v: int) -> list:
    """What a client sends after CONNECT."""
    pp = props(v, payload_format_indicator=1, message_expiry_interval=2**32 - 1, content_type="json",
               response_topic="resp/1", correlation_data=b"cd", topic_alias=3, user_property=UP)
    ack = props(v, reason_string="why", user_property=UP)
    code = 0x10 if v == 5 else 0
    return [
        Publish("a/b", b"payload", 0, False, False, None, None),
        Publish("a/b", b"", 1, True, True, 1, pp),
        Publish("$SYS/x/ü", bytes(300), 2, False, False, 65535, pp),
        Puback(2), Pubrec(3), Pubrel(4), Pubcomp(5),
        Puback(6, code, ack), Pubrec(7, code, ack), Pubrel(8, code, ack), Pubcomp(9, code, ack),
        Subscribe(10, [("a/#", SubOpts(0)), ("+/b", SubOpts(1)), ("$share/g/c", SubOpts(2))],
                  props(v, subscription_identifier=[268435455], user_property=UP)),
        Subscribe(11, [("x", SubOpts(1, True, True, 2) if v == 5 else SubOpts(1))]),
        Unsubscribe(12, ["a/#", "+/b"], props(v, user_property=UP)),
        Pingreq(),
        Disconnect(0x04 if v == 5 else 0, props(v, session_expiry_interval=0, reason_string="bye",
                                                user_property=UP)),
        Disconnect(),
    ] + ([Auth(0x18, {"authentication_method": "SCRAM", "authentication_data": b"d",
                      "reason_string": "r", "user_property": UP}), Auth()] if v == 5 else [])


def server_packets(v: int) -> list:
    """What a server sends."""
    ack = props(v, reason_string="why", user_property=UP)
    connack = props(v, session_expiry_interval=10, assigned_client_identifier="gen-1", server_keep_alive=30,
                    authentication_method="SCRAM", authentication_data=b"x", response_information="ri",
                    server_reference="other:1883", reason_string="ok", receive_maximum=100,
                    topic_alias_maximum=5, maximum_qos=1, retain_available=0, user_property=UP,
                    maximum_packet_size=1024, wildcard_subscription_available=1,
                    subscription_identifier_available=0, shared_subscription_available=1)
    return [
        Connack(True, 0, connack),
        Connack(False, 0x87 if v == 5 else 5),
        Publish("a/b", b"m", 1, False, False, 7,
                props(v, subscription_identifier=[1, 2, 268435455], user_property=UP)),
        Publish("q", b"m", 0, True, False, None, None),
        Puback(1), Pubrec(2, 0x10 if v == 5 else 0, ack), Pubrel(3), Pubcomp(4),
        Suback(5, [0, 1, 2, 0x80], ack),
        Unsuback(6, [0, 0x11] if v == 5 else [], ack),
        Pingresp(),
    ] + ([Disconnect(0x8E, props(v, server_reference="x", reason_string="taken", user_property=UP)),
          Auth(0x19, {"authentication_method": "M"})] if v == 5 else [])


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("v", VERSIONS)
def test_connect_round_trip(v):
    for pk in connects(v):
        dec = Decoder()
        assert dec.feed(encode(pk, v)) == [pk]
        assert dec.version == v


@pytest.mark.parametrize("v", VERSIONS)
def test_client_packets_round_trip(v):
    pkts = client_packets(v)
    dec = connected(v)
    assert dec.feed(b"".join(encode(pk, v) for pk in pkts)) == pkts


@pytest.mark.parametrize("v", VERSIONS)
def test_server_packets_round_trip(v):
    pkts = server_packets(v)
    assert Decoder(v, server=False).feed(b"".join(encode(pk, v) for pk in pkts)) == pkts


@pytest.mark.parametrize("v", VERSIONS)
def test_publish_keeps_the_received_frame_only_where_forwarding_it_is_exact(v):
    """v3 QoS 0 without retain: the frame a v3 QoS 0 subscriber gets, byte for byte."""
    dec = connected(v)
    plain, qos1, retained = (Publish("f/t", b"pay", 0), Publish("f/t", b"pay", 1, packet_id=7),
                             Publish("f/t", b"pay", 0, retain=True))
    frames = [encode(pk, v) for pk in (plain, qos1, retained)]
    got = dec.feed(b"".join(frames))
    assert got == [plain, qos1, retained]
    assert [p.frame for p in got] == [None if v == 5 else frames[0], None, None]


@pytest.mark.parametrize("v", VERSIONS)
def test_split_byte_by_byte(v):
    pkts = client_packets(v) + [Publish("big", bytes(20000), 1, False, False, 9, None)]
    data = encode(connects(v)[1], v) + b"".join(encode(pk, v) for pk in pkts)
    dec = Decoder()
    got = []
    for k in range(len(data)):
        got += dec.feed(data[k:k + 1])
    assert got[1:] == pkts


def test_many_frames_in_one_feed_and_any_split():
    pkts = [Publish(f"t/{k}", bytes([k % 256]) * (k % 200), k % 3, k % 2 == 1, False,
                    k + 1 if k % 3 else None) for k in range(500)]
    data = b"".join(encode(pk, 4) for pk in pkts)
    assert connected(4).feed(data) == pkts
    for cut in (1, 2, 3, 7, 100, 4096):
        dec, got = connected(4), []
        for k in range(0, len(data), cut):
            got += dec.feed(data[k:k + cut])
        assert got == pkts


def test_large_frame_collected_across_many_feeds():
    pk = Publish("big", bytes(range(256)) * 4096, 1, False, False, 1, None)  # 1 MiB, 4-byte length
    data = encode(pk, 4)
    dec = connected(4)
    chunks = [data[k:k + 65536] for k in range(0, len(data), 65536)]
    assert all(dec.feed(c) == [] for c in chunks[:-1])
    assert dec.feed(chunks[-1] + encode(Pingreq(), 4)) == [pk, Pingreq()]


def test_remaining_length_boundaries():
    dec = connected(4)
    for size in (127 - 5, 128 - 5, 16383 - 5, 16384 - 5, 2097151 - 5, 2097152 - 5):
        pk = Publish("t", bytes(size), 0)
        assert dec.feed(encode(pk, 4)) == [pk]


# --- publish_frame -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", VERSIONS)
@pytest.mark.parametrize("qos", (0, 1, 2))
def test_publish_frame_patching(v, qos):
    p = props(v, message_expiry_interval=5, user_property=UP)
    frame_, off = publish_frame("a/ü".encode(), b"data" * 50, qos, True, p, v)
    if not qos:
        assert off == -1
        assert connected(v).feed(frame_) == [Publish("a/ü", b"data" * 50, 0, True, False, None, p)]
        return
    assert frame_[off:off + 2] == b"\x00\x00"
    patched = bytes([frame_[0] | 0x08]) + frame_[1:off] + (513).to_bytes(2, "big") + frame_[off + 2:]
    assert connected(v).feed(patched) == [Publish("a/ü", b"data" * 50, qos, True, True, 513, p)]
    assert patched == encode(Publish("a/ü", b"data" * 50, qos, True, True, 513, p), v)


# --- properties -----------------------------------------------------------------------------------


def _snake(paho_name: str) -> str:
    return paho_name.lower().replace(" ", "_")


def test_property_table_matches_paho():
    table = Properties(PacketTypes.PUBLISH)
    assert {pid: _snake(n) for n, pid in table.names.items()} == {pid: e[0] for pid, e in PROPERTIES.items()}
    for pid, (_type, paho_types) in table.properties.items():
        ours = {WILL if t == PacketTypes.WILLMESSAGE else t for t in paho_types}
        assert set(PROPERTIES[pid][2]) == ours, PROPERTIES[pid][0]


def test_properties_against_paho():
    pp = Properties(PacketTypes.PUBLISH)
    pp.PayloadFormatIndicator = 1
    pp.MessageExpiryInterval = 99
    pp.ContentType = "ct"
    pp.ResponseTopic = "rt"
    pp.CorrelationData = b"cd"
    pp.SubscriptionIdentifier = 5
    pp.SubscriptionIdentifier = 300
    pp.TopicAlias = 2
    pp.UserProperty = ("a", "1")
    pp.UserProperty = ("a", "2")
    ours = {"payload_format_indicator": 1, "message_expiry_interval": 99, "content_type": "ct",
            "response_topic": "rt", "correlation_data": b"cd", "subscription_identifier": [5, 300],
            "topic_alias": 2, "user_property": [("a", "1"), ("a", "2")]}
    packed = pp.pack()
    assert decode_properties(packed, 0, len(packed), PUBLISH) == (ours, len(packed))
    assert encode_properties(ours, PUBLISH) == packed


def test_encode_properties_rejects_unknown_and_misplaced():
    assert encode_properties(None, PUBLISH) == encode_properties({}, PUBLISH) == b"\x00"
    with pytest.raises(ValueError):
        encode_properties({"no_such_property": 1}, PUBLISH)
    with pytest.raises(ValueError):
        encode_properties({"session_expiry_interval": 1}, PUBLISH)


# --- paho-mqtt cross-checks -----------------------------------------------------------------------

PAHO_PROTO = {3: paho.MQTTv31, 4: paho.MQTTv311, 5: paho.MQTTv5}


class _FakeSock:
    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        if not out:
            raise BlockingIOError
        return out

    def close(self) -> None:
        pass


def _paho_client(v: int) -> tuple[paho.Client, list[bytes]]:
    sent: list[bytes] = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="paho-cid", protocol=PAHO_PROTO[v])
    c._sock = _FakeSock()

    def capture(command, packet, mid, qos, info=None):
        sent.append(bytes(packet))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    c._packet_queue = capture
    return c, sent


@pytest.mark.parametrize("v", VERSIONS)
def test_decode_paho_client_packets(v):
    c, sent = _paho_client(v)
    c.username_pw_set("user", "pass")
    wp = None
    if v == 5:
        wp = Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = 10
    c.will_set("will/t", b"gone", 1, True, properties=wp)
    cp = None
    if v == 5:
        cp = Properties(PacketTypes.CONNECT)
        cp.SessionExpiryInterval = 60
        cp.ReceiveMaximum = 10
    c._connect_properties = cp
    c._send_connect(45)
    pubp = None
    if v == 5:
        pubp = Properties(PacketTypes.PUBLISH)
        pubp.UserProperty = ("x", "y")
        pubp.MessageExpiryInterval = 3
    c._send_publish(7, b"p/t", b"hello", 1, False, False, properties=pubp)
    c._send_publish(0, b"p/t", b"q0", 0, True, False, properties=pubp)
    opts = paho.SubscribeOptions(qos=2, noLocal=True, retainAsPublished=True, retainHandling=1)
    c._send_subscribe(False, [("s/#", opts if v == 5 else 2)])
    c._send_unsubscribe(False, ["s/#"])
    c._send_command_with_mid(paho.PUBREL | 2, 7, False)  # as paho sends it
    c._send_simple_command(paho.PINGREQ)
    c._send_disconnect()

    dec = Decoder()
    got = [pk for raw in sent for pk in dec.feed(raw)]
    conn, pub1, pub0, sub, unsub, rel, ping, disc = got
    assert (conn.proto_level, conn.proto_name, conn.client_id, conn.keepalive) == (v, NAME[v], "paho-cid", 45)
    assert (conn.username, conn.password) == ("user", b"pass")
    assert conn.will == Will("will/t", b"gone", 1, True, props(v, will_delay_interval=10))
    assert conn.properties == props(v, session_expiry_interval=60, receive_maximum=10)
    pp = props(v, user_property=[("x", "y")], message_expiry_interval=3)
    assert pub1 == Publish("p/t", b"hello", 1, False, False, 7, pp)
    assert pub0 == Publish("p/t", b"q0", 0, True, False, None, pp)
    want = SubOpts(2, True, True, 1) if v == 5 else SubOpts(2)
    assert (sub.topics, unsub.topics) == ([("s/#", want)], ["s/#"])
    assert (rel, ping, disc) == (Pubrel(7), Pingreq(), Disconnect())
    # Re-encoding what was decoded gives paho's bytes back (mids differ per packet, so compare each).
    assert [encode(pk, v) for pk in got] == sent


@pytest.mark.parametrize("v", VERSIONS)
def test_paho_decodes_our_server_packets(v):
    c, _ = _paho_client(v)
    seen: dict = {}
    c.on_connect = lambda cl, ud, flags, rc, pr: seen.update(connect=(flags.session_present, rc.value, pr))
    c.on_message = lambda cl, ud, msg: seen.update(message=(msg.topic, msg.payload, msg.qos, msg.retain,
                                                            msg.mid, msg.properties))
    c.on_subscribe = lambda cl, ud, mid, rcs, pr: seen.update(suback=(mid, [r.value for r in rcs]))
    cack = props(v, assigned_client_identifier="gen", topic_alias_maximum=4)
    pub = props(v, subscription_identifier=[3], content_type="c")
    data = (encode(Connack(False, 0, cack), v) + encode(Suback(1, [1, 0x80], None), v)
            + encode(Publish("x/y", b"body", 1, True, False, 9, pub), v))
    c._sock = _FakeSock(data)
    c._state = paho._ConnectionState.MQTT_CS_CONNECTING
    for _ in range(3):
        c.loop_read()
    session_present, rc, cprops = seen["connect"]
    assert (session_present, rc) == (False, 0)
    assert seen["suback"] == (1, [1, 0x80])
    topic, payload, qos, retain, mid, mprops = seen["message"]
    assert (topic, payload, qos, retain, mid) == ("x/y", b"body", 1, True, 9)
    if v == 5:
        assert (cprops.AssignedClientIdentifier, cprops.TopicAliasMaximum) == ("gen", 4)
        assert (mprops.SubscriptionIdentifier, mprops.ContentType) == ([3], "c")


# --- validation -----------------------------------------------------------------------------------


def test_error_reason_codes():
    assert MQTTError.reason_code == reasons.UNSPECIFIED_ERROR
    assert MalformedPacket.reason_code == 0x81
    assert ProtocolError.reason_code == 0x82
    assert PacketTooLarge.reason_code == 0x95
    assert UnsupportedProtocolVersion.reason_code == 0x84
    assert issubclass(MalformedPacket, MQTTError)


def check(exc: type[MQTTError], data: bytes, dec: Decoder) -> str:
    with pytest.raises(exc) as info:
        dec.feed(data)
    assert info.value.reason_code == exc.reason_code
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


V345 = pytest.mark.parametrize("v", VERSIONS)


@V345
def test_bad_remaining_length(v):
    check(MalformedPacket, b"\x30\xff\xff\xff\xff\x01", connected(v))
    check(MalformedPacket, b"\x30\x80\x80\x80\x80", connected(v))  # detected without the 5th byte


@V345
@pytest.mark.parametrize("raw", [b"a\xffb", b"\xed\xa0\x80", b"\xc0\xaf", b"a\x00b", b"\xf4\x90\x80\x80"])
def test_bad_utf8_and_nul(v, raw):
    pl = b"\x00" if v == 5 else b""
    check(MalformedPacket, frame(0x30, s(raw) + pl + b"x"), connected(v))
    check(MalformedPacket, frame(0x82, b"\x00\x01" + pl + s(raw) + b"\x00"), connected(v))
    check(MalformedPacket, frame(0xA2, b"\x00\x01" + pl + s(raw)), connected(v))
    check(MalformedPacket, frame(0x10, s(NAME[v]) + bytes([v, 2]) + b"\x00\x3c" + pl + s(raw)), Decoder())


def test_bad_utf8_in_property():
    bad_up = b"\x26" + s(b"k") + s(b"\xff")
    check(MalformedPacket, frame(0x30, s("t") + bytes([len(bad_up)]) + bad_up), connected(5))


@V345
@pytest.mark.parametrize("flip", [0x01, 0x02, 0x04, 0x08])
def test_reserved_fixed_header_flags(v, flip):
    for pk in (Puback(1), Pubrec(1), Pubrel(1), Pubcomp(1), Subscribe(1, [("a", SubOpts())]),
               Unsubscribe(1, ["a"]), Pingreq(), Disconnect()):
        raw = encode(pk, v)
        check(MalformedPacket, bytes([raw[0] ^ flip]) + raw[1:], connected(v))
    raw = encode(Connect("c"), v)
    check(MalformedPacket, bytes([raw[0] ^ flip]) + raw[1:], Decoder())


@V345
@pytest.mark.parametrize("topic", ["a/+", "#", "a/#", "+", "a+b"])
def test_wildcards_in_publish_topic(v, topic):
    check(MalformedPacket, encode(Publish(topic, b"x"), v), connected(v))


@V345
def test_empty_publish_topic(v):
    check(ProtocolError, encode(Publish("", b"x"), v), connected(v))


def test_empty_topic_with_alias_v5():
    pk = Publish("", b"x", 1, False, False, 1, {"topic_alias": 4})
    assert connected(5).feed(encode(pk, 5)) == [pk]


@V345
def test_qos3_and_dup_on_qos0(v):
    pk = encode(Publish("t", b"x", 1, False, False, 1), v)
    check(MalformedPacket, bytes([0x36]) + pk[1:], connected(v))
    check(MalformedPacket, encode(Publish("t", b"x", 0, False, True), v), connected(v))


@V345
def test_packet_id_zero(v):
    for pk in (Publish("t", b"x", 1, False, False, 0), Publish("t", b"x", 2, False, False, 0),
               Subscribe(0, [("a", SubOpts())]), Unsubscribe(0, ["a"]),
               Puback(0), Pubrec(0), Pubrel(0), Pubcomp(0)):
        check(ProtocolError, encode(pk, v), connected(v))
    for pk in (Suback(0, [0]), Unsuback(0, [0])):
        check(ProtocolError, encode(pk, v), Decoder(v, server=False))


@V345
def test_empty_subscribe_and_unsubscribe(v):
    check(ProtocolError, encode(Subscribe(1, []), v), connected(v))
    check(ProtocolError, encode(Unsubscribe(1, []), v), connected(v))


@pytest.mark.parametrize("v", (3, 4))
@pytest.mark.parametrize("opts", [0x03, 0x04, 0x08, 0x10, 0x80])
def test_v3_subscribe_reserved_bits(v, opts):
    check(MalformedPacket, frame(0x82, b"\x00\x01" + s("a") + bytes([opts])), connected(v))


def test_v5_subscription_options():
    def sub(opts: int, topic: str = "a") -> bytes:
        return frame(0x82, b"\x00\x01\x00" + s(topic) + bytes([opts]))
    check(MalformedPacket, sub(0x40), connected(5))
    check(MalformedPacket, sub(0x80), connected(5))
    check(MalformedPacket, sub(0x03), connected(5))
    check(ProtocolError, sub(0x30), connected(5))
    check(ProtocolError, sub(0x04, "$share/g/a"), connected(5))
    assert connected(5).feed(sub(0x2E))[0].topics == [("a", SubOpts(2, True, True, 2))]


def _publish_with_props(raw_props: bytes) -> bytes:
    return frame(0x30, s("t") + bytes([len(raw_props)]) + raw_props + b"payload")


@pytest.mark.parametrize("raw,exc", [
    (b"\x02\x00\x00\x00\x01" * 2, ProtocolError),  # duplicate message_expiry_interval
    (b"\x23\x00\x01" * 2, ProtocolError),  # duplicate topic_alias
    (b"\x11\x00\x00\x00\x01", ProtocolError),  # session_expiry_interval is not for PUBLISH
    (b"\x0b\x01", ProtocolError),  # subscription_identifier from a client
    (b"\x01\x02", ProtocolError),  # payload_format_indicator must be 0 or 1
    (b"\x7f\x00", MalformedPacket),  # unknown property id
    (b"\x02\x00\x00", MalformedPacket),  # value cut short by the property length
])
def test_bad_publish_properties(raw, exc):
    check(exc, _publish_with_props(raw), connected(5))


def test_repeatable_properties():
    up = b"\x26" + s("k") + s("v")
    assert connected(5).feed(_publish_with_props(up * 3))[0].properties == {"user_property": [("k", "v")] * 3}
    subid = b"\x0b\x01\x0b\x02"
    got = Decoder(5, server=False).feed(_publish_with_props(subid))[0]
    assert got.properties == {"subscription_identifier": [1, 2]}
    check(ProtocolError, frame(0x82, b"\x00\x01\x04" + subid + s("a") + b"\x00"), connected(5))
    check(ProtocolError, frame(0x82, b"\x00\x01\x02\x0b\x00" + s("a") + b"\x00"), connected(5))  # id 0


def test_invalid_property_values():
    def conn(raw: bytes) -> bytes:
        body = s("MQTT") + b"\x05\x02\x00\x00" + bytes([len(raw)]) + raw + s("c")
        return frame(0x10, body)
    check(ProtocolError, conn(b"\x21\x00\x00"), Decoder())  # receive_maximum 0
    check(ProtocolError, conn(b"\x27\x00\x00\x00\x00"), Decoder())  # maximum_packet_size 0
    check(ProtocolError, conn(b"\x17\x02"), Decoder())  # request_problem_information 2
    check(ProtocolError, conn(b"\x16" + s("data")), Decoder())  # authentication data without method
    check(ProtocolError, conn(b"\x18\x00\x00\x00\x01"), Decoder())  # will_delay_interval outside will


@V345
def test_max_packet_size_checked_on_the_fixed_header(v):
    dec = connected(v, max_packet_size=100)
    big = encode(Publish("t", bytes(1000), 0), v)
    check(PacketTooLarge, big[:4], dec)  # only the fixed header has arrived
    ok = Publish("t", bytes(100 - 5 - (v == 5)), 0)
    assert len(encode(ok, v)) == 100
    assert connected(v, max_packet_size=100).feed(encode(ok, v)) == [ok]


def test_max_packet_size_settable_after_connect():
    dec = connected(4)
    dec.max_packet_size = 10
    check(PacketTooLarge, encode(Publish("t", bytes(20), 0), 4), dec)


@pytest.mark.parametrize("name,level,exc", [
    ("MQTX", 4, ProtocolError),
    ("", 4, ProtocolError),
    ("MQTT", 6, UnsupportedProtocolVersion),
    ("MQTT", 3, UnsupportedProtocolVersion),
    ("MQIsdp", 4, UnsupportedProtocolVersion),
    ("MQTT", 0, UnsupportedProtocolVersion),
])
def test_protocol_name_and_level(name, level, exc):
    check(exc, frame(0x10, s(name) + bytes([level]) + b"\x02\x00\x3c" + s("c")), Decoder())


@pytest.mark.parametrize("v,flags,exc", [
    (4, 0x03, MalformedPacket),  # reserved bit
    (5, 0x01, MalformedPacket),
    (4, 0x08, MalformedPacket),  # will qos without will flag
    (4, 0x20, MalformedPacket),  # will retain without will flag
    (4, 0x1C, MalformedPacket),  # will qos 3
    (4, 0x40, MalformedPacket),  # password without user name (3.1.1)
    (3, 0x40, MalformedPacket),
])
def test_connect_flags(v, flags, exc):
    check(exc, frame(0x10, s(NAME[v]) + bytes([v, flags]) + b"\x00\x3c" + (b"\x00" if v == 5 else b"")
                     + s("c") + s("pw")), Decoder())


def test_v5_password_without_user_name_is_allowed():
    pk = Connect("c", proto_level=5, password=b"pw")
    assert Decoder().feed(encode(pk, 5)) == [pk]


@V345
def test_connect_order(v):
    check(ProtocolError, encode(Publish("t", b"x"), v), Decoder())
    check(ProtocolError, encode(Pingreq(), v), Decoder())
    check(ProtocolError, encode(Connect("c"), v), connected(v))


def test_connect_and_publish_in_one_feed():
    data = encode(Connect("c", proto_level=5), 5) + encode(Publish("t", b"x", 0, False, False, None,
                                                                     {"topic_alias": 1}), 5)
    dec = Decoder()
    assert [type(p) for p in dec.feed(data)] == [Connect, Publish]
    assert dec.version == 5


@V345
def test_wrong_direction(v):
    check(ProtocolError, encode(Connack(), v), connected(v))
    check(ProtocolError, encode(Suback(1, [0]), v), connected(v))
    check(ProtocolError, encode(Pingresp(), v), connected(v))
    check(ProtocolError, encode(Pingreq(), v), Decoder(v, server=False))
    check(ProtocolError, encode(Subscribe(1, [("a", SubOpts())]), v), Decoder(v, server=False))


@V345
def test_reserved_packet_types(v):
    check(MalformedPacket, b"\x00\x00", connected(v))
    if v != 5:
        check(MalformedPacket, b"\xf0\x00", connected(v))


@V345
def test_truncated_and_overlong_bodies(v):
    pl = b"\x00" if v == 5 else b""
    cases = [
        frame(0x30, s("topic")[:4]),  # topic longer than the packet
        frame(0x30, b"\x00"),  # not even a topic length
        frame(0x32, s("t") + b"\x00"),  # packet id cut short
        frame(0x40, b"\x00"),  # PUBACK too short
        frame(0xC0, b"\x00"),  # PINGREQ with a body
        frame(0x82, b"\x00\x01" + pl + s("a")),  # SUBSCRIBE filter without options
        frame(0x10, encode(Connect("c"), v)[2:] + b"\x00"),  # CONNECT with a trailing byte
        frame(0x10, encode(Connect("c"), v)[2:-1]),  # CONNECT cut short
    ]
    if v != 5:
        cases += [frame(0x40, b"\x00\x01\x00"), frame(0xE0, b"\x00")]
    for data in cases:
        check(MalformedPacket, data, Decoder() if data[0] == 0x10 else connected(v))


def test_v5_truncated_properties():
    check(MalformedPacket, frame(0x30, s("t")), connected(5))  # no property length
    check(MalformedPacket, frame(0x30, s("t") + b"\x05\x02"), connected(5))  # length beyond packet
    check(MalformedPacket, frame(0x40, b"\x00\x01\x00\x05"), connected(5))


def test_decoder_version_writable_and_client_needs_version():
    dec = Decoder(4, server=False)
    dec.version = 5
    assert dec.feed(encode(Puback(1, 0x10), 5)) == [Puback(1, 0x10)]
    with pytest.raises(ValueError):
        Decoder(server=False)


def test_v5_short_acks_and_disconnect():
    dec = connected(5)
    assert dec.feed(frame(0x40, b"\x00\x01") + frame(0x40, b"\x00\x01\x10") + frame(0xE0, b"")
                    + frame(0xE0, b"\x04") + frame(0xF0, b"")) == [
        Puback(1), Puback(1, 0x10), Disconnect(), Disconnect(4), Auth()]


@pytest.mark.parametrize("code", [reasons.NOT_AUTHORIZED, reasons.BANNED])
def test_v3_connack_from_v5_reason(code):
    assert encode(Connack(False, reasons.connack_v3(code)), 4) == b"\x20\x02\x00\x05"


def test_version_known_when_connect_fails_after_the_level():
    dec = Decoder()
    check(MalformedPacket, frame(0x10, s("MQTT") + b"\x05\x01\x00\x3c\x00" + s("c")), dec)
    assert dec.version == 5
