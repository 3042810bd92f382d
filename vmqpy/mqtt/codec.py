"""Bytes <-> packets for MQTT 3.1, 3.1.1 and 5.0: an incremental decoder and encoders.

`Decoder.feed` is the broker's hottest function (DESIGN §3): it decodes every
complete frame of a recv in one loop of index arithmetic over a bytes object,
with PUBLISH decoded inline; the other packet types go through a table.
Decoding validates everything the specs make a Malformed Packet or Protocol
Error, so the session only sees well-formed packets.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

from vmqpy.mqtt import reasons
from vmqpy.mqtt.packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MQTT5,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
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
from vmqpy.mqtt.properties import (
    BINARY,
    BOOLEAN,
    BY_NAME,
    BYTE,
    NONZERO,
    PROPERTIES,
    UINT16,
    UINT32,
    UTF8,
    UTF8_PAIR,
    VARINT,
    WILL,
)

NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC",
    PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT", AUTH: "AUTH", WILL: "will",
}


class MQTTError(Exception):
    """A packet the peer must not have sent; `reason_code` is the v5 code to answer with."""

    reason_code = reasons.UNSPECIFIED_ERROR


class MalformedPacket(MQTTError):
    reason_code = reasons.MALFORMED_PACKET


class ProtocolError(MQTTError):
    reason_code = reasons.PROTOCOL_ERROR


class PacketTooLarge(MQTTError):
    reason_code = reasons.PACKET_TOO_LARGE


class UnsupportedProtocolVersion(MQTTError):
    reason_code = reasons.UNSUPPORTED_PROTOCOL_VERSION


# --- decoding primitives: (buf, pos, end) -> (value, next pos) ------------------------------------------


def _truncated(what: str) -> MalformedPacket:
    return MalformedPacket(f"truncated packet: remaining length ends inside the {what}")


def _remaining_length(buf: bytes, pos: int, n: int) -> tuple[int, int]:
    """A variable byte integer at buf[pos:n]; (-1, 0) if the buffer ends inside it."""
    value = 0
    for k in range(4):
        if pos + k >= n:
            return -1, 0
        b = buf[pos + k]
        value |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            return value, pos + k + 1
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _remaining_length(buf, pos, end)
    if value < 0:
        raise _truncated("variable byte integer")
    return value, pos


def _byte(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _truncated("byte field")
    return buf[pos], pos + 1


def _u16(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise _truncated("two byte integer")
    return (buf[pos] << 8) | buf[pos + 1], pos + 2


def _u32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise _truncated("four byte integer")
    return int.from_bytes(buf[pos:pos + 4], "big"), pos + 4


def _binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    n, pos = _u16(buf, pos, end)
    if pos + n > end:
        raise _truncated("binary data")
    return buf[pos:pos + n], pos + n


def _text(raw: bytes) -> str:
    """Decode a UTF-8 string field; Python's strict codec already rejects surrogates and overlongs."""
    try:
        s = raw.decode()
    except UnicodeDecodeError as e:
        raise MalformedPacket(f"ill-formed UTF-8 string {raw[:64]!r}: {e.reason}") from None
    if "\x00" in s:
        raise MalformedPacket(f"UTF-8 string contains U+0000: {s[:64]!r}")
    return s


def _utf8(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = _binary(buf, pos, end)
    return _text(raw), pos


def _utf8_pair(buf: bytes, pos: int, end: int) -> tuple[tuple[str, str], int]:
    key, pos = _utf8(buf, pos, end)
    value, pos = _utf8(buf, pos, end)
    return (key, value), pos


def _packet_id(buf: bytes, pos: int, end: int, ptype: int) -> tuple[int, int]:
    pid, pos = _u16(buf, pos, end)
    if not pid:
        raise ProtocolError(f"{NAMES[ptype]} with packet identifier 0")
    return pid, pos


def _done(pos: int, end: int, ptype: int) -> None:
    if pos != end:
        raise MalformedPacket(f"{NAMES[ptype]} has {end - pos} bytes beyond its content")


_READERS: dict[int, Callable[[bytes, int, int], tuple]] = {
    BYTE: _byte, UINT16: _u16, UINT32: _u32, VARINT: _varint,
    UTF8: _utf8, BINARY: _binary, UTF8_PAIR: _utf8_pair,
}


def decode_properties(buf: bytes, pos: int, end: int, ptype: int) -> tuple[dict | None, int]:
    """The property block at buf[pos:end] of a `ptype` packet (properties.WILL for will properties)."""
    length, pos = _varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise _truncated("properties")
    if not length:
        return None, pos
    props: dict = {}
    while pos < stop:
        pid, pos = _varint(buf, pos, stop)
        entry = PROPERTIES.get(pid)
        if entry is None:
            raise MalformedPacket(f"{NAMES[ptype]}: unknown property identifier 0x{pid:02X}")
        name, dtype, allowed = entry
        if ptype not in allowed:
            raise ProtocolError(f"{NAMES[ptype]} must not carry property {name}")
        value, pos = _READERS[dtype](buf, pos, stop)
        if (name in BOOLEAN and value > 1) or (name in NONZERO and not value):
            raise ProtocolError(f"{NAMES[ptype]}: invalid {name} value {value}")
        if name == "user_property" or (name == "subscription_identifier" and ptype == PUBLISH):
            props.setdefault(name, []).append(value)
        elif name in props:
            raise ProtocolError(f"{NAMES[ptype]}: property {name} given twice")
        else:
            props[name] = [value] if name == "subscription_identifier" else value
    if "authentication_data" in props and "authentication_method" not in props:
        raise ProtocolError(f"{NAMES[ptype]}: authentication_data without authentication_method")
    return props, stop


# --- the decoder -------------------------------------------------------------------------------------------

# Validated topic bytes -> str, shared by all decoders (gevent: one thread).
# Real traffic repeats topics, and a hit skips UTF-8 decoding and checks.
_TOPICS: dict[bytes, str] = {}
_TOPIC_CACHE_MAX = 16384
_TOPIC_CACHE_LEN = 256  # longer topics are not cached, bounding the cache's memory


def _publish_topic(raw: bytes) -> str:
    topic = _text(raw)
    if "+" in topic or "#" in topic:
        raise MalformedPacket(f"PUBLISH topic contains a wildcard: {topic[:64]!r}")
    if topic and len(raw) <= _TOPIC_CACHE_LEN:
        if len(_TOPICS) >= _TOPIC_CACHE_MAX:
            _TOPICS.clear()
        _TOPICS[raw] = topic
    return topic


def _publish_props(buf: bytes, pos: int, end: int, server: bool) -> tuple[dict | None, int]:
    props, pos = decode_properties(buf, pos, end, PUBLISH)
    if server and props and "subscription_identifier" in props:
        raise ProtocolError("PUBLISH from a client must not carry subscription_identifier")
    return props, pos


# Required low nibble of byte 0 per type (PUBLISH is checked on its own).
_FLAGS = {PUBREL: 0x02, SUBSCRIBE: 0x02, UNSUBSCRIBE: 0x02}
# What may arrive once connected (CONNECT only ever comes first).
_FROM_CLIENT = frozenset({PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE,
                          PINGREQ, DISCONNECT, AUTH})
_FROM_SERVER = frozenset({CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
                          PINGRESP, DISCONNECT, AUTH})


# PUBLISH byte 0 -> (QoS, retain, DUP); QoS -1 where the flags make it malformed (QoS 3, DUP on QoS 0).
_PUBLISH_FLAGS = [(-1 if (b >> 1) & 3 == 3 or (b & 0x0E) == 0x08 else (b >> 1) & 3, b & 1 == 1, b & 8 == 8)
                  for b in range(256)]


class Decoder:
    """Incremental decoder for one connection.

    Server side (the default) starts without a version: the first packet must
    be CONNECT, which sets `version`. A client-side decoder is given it.
    `max_packet_size` (0 = unlimited) refuses a frame as soon as its fixed
    header is read, before its body is buffered.
    """

    __slots__ = ("version", "max_packet_size", "server", "_ready", "_rest", "_have", "_need")

    def __init__(self, version: int | None = None, max_packet_size: int = 0, server: bool = True) -> None:
        if not server and version is None:
            raise ValueError("a client-side decoder needs the protocol version")
        self.version = version
        self.max_packet_size = max_packet_size
        self.server = server
        self._ready = not server  # a server is ready once it has decoded CONNECT
        self._rest: list[bytes] = []  # undecoded tail, kept as chunks to avoid quadratic joins
        self._have = 0  # bytes in _rest
        self._need = 0  # bytes the pending frame needs in total, 0 while its header is incomplete

    def feed(self, data: bytes) -> list[Packet]:
        """Append `data` and return every packet completed by it.

        Raises an MQTTError subclass for invalid input; the connection must
        then be closed (the decoder's buffer state is undefined).
        """
        if self._rest:
            self._rest.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(self._rest)
            self._rest = []
        elif len(data) == 4 and data[1] == 2 and self._ready and data[0] in _SHORT_ACKS and (data[2] or data[3]) \
                and not 0 < self.max_packet_size < 4:
            # Exactly one success ack (PUBACK...): what a subscriber sends for every QoS 1/2 message.
            return [_SHORT_ACKS[data[0]](data[2] << 8 | data[3])]
        else:
            buf = data
        # (Module globals are read directly: 3.11 caches them, and a batch is often one packet.)
        out: list[Packet] = []
        n = len(buf)
        i = need = 0
        limit = self.max_packet_size
        if self._ready:
            ver = self.version
        else:
            ver = None  # None routes everything via the slow path
            if n and buf[0] >> 4 != CONNECT:
                # Refuse a non-MQTT peer (e.g. an HTTP request) at its first byte,
                # instead of waiting for a body whose length is garbage.
                first = buf[0] >> 4
                raise ProtocolError(f"first packet is {NAMES[first] if first else 'reserved type 0'}, not CONNECT")
        v5 = ver == MQTT5
        scan = _scan if ver is not None else None
        while n - i >= 2:
            if scan is not None:
                # The compiled twin takes the usual packets; this loop decodes the others.
                i = scan(buf, i, v5, limit, out)
                if n - i < 2:
                    break
            b0 = buf[i]
            p = i + 2
            rl = buf[i + 1]
            if rl & 0x80:
                rl, p = _remaining_length(buf, i + 1, n)
                if rl < 0:
                    break
            end = p + rl
            if limit and end - i > limit:
                raise PacketTooLarge(f"{end - i} byte packet exceeds the maximum packet size {limit}")
            if end > n:
                need = end - i
                break
            if b0 & 0xF0 == 0x30 and ver is not None:
                # PUBLISH, inlined: this is most of the broker's traffic.
                q = p + 2 + ((buf[p] << 8) | buf[p + 1]) if rl >= 2 else end + 1
                if q > end:
                    raise _truncated("PUBLISH topic")
                raw = buf[p + 2:q]
                topic = _TOPICS.get(raw)
                if topic is None:
                    topic = _publish_topic(raw)
                qos, retain, dup = _PUBLISH_FLAGS[b0]
                if qos:
                    if qos < 0:
                        what = "QoS 3" if b0 & 6 == 6 else "DUP set on QoS 0"
                        raise MalformedPacket(f"PUBLISH with {what}")
                    if q + 2 > end:
                        raise _truncated("PUBLISH packet identifier")
                    pid = (buf[q] << 8) | buf[q + 1]
                    if not pid:
                        raise ProtocolError("PUBLISH QoS > 0 with packet identifier 0")
                    q += 2
                else:
                    pid = None
                props = None
                if v5:
                    if q >= end:
                        raise _truncated("PUBLISH property length")
                    if buf[q]:
                        props, q = _publish_props(buf, q, end, self.server)
                    else:
                        q += 1
                if not topic and (props is None or "topic_alias" not in props):
                    raise ProtocolError("PUBLISH with an empty topic and no topic alias")
                out.append(Publish(topic, buf[q:end], qos, retain, dup, pid, props,
                                   buf[i:end] if b0 == 0x30 and not v5 else None))
            elif rl == 2 and b0 in _SHORT_ACKS and ver is not None:
                # A success ack without reason code: the other half of QoS 1/2 traffic.
                pid = (buf[p] << 8) | buf[p + 1]
                if not pid:
                    raise ProtocolError(f"{NAMES[b0 >> 4]} with packet identifier 0")
                out.append(_SHORT_ACKS[b0](pid))
            else:
                out.append(self._decode_other(b0, buf, p, end))
                ver = self.version if self._ready else None
                v5 = ver == MQTT5
                scan = _scan if ver is not None else None
            i = end
        if i < n:
            self._rest = [buf[i:] if i else buf]
            self._have = n - i
            self._need = need
        return out

    def _decode_other(self, b0: int, buf: bytes, p: int, end: int) -> Packet:
        ptype = b0 >> 4
        if not ptype or (ptype == AUTH and self.version != MQTT5 and self._ready):
            raise MalformedPacket(f"reserved packet type {ptype}")
        if not self._ready:
            if ptype != CONNECT:
                raise ProtocolError(f"first packet is {NAMES[ptype]}, not CONNECT")
        elif ptype == CONNECT and self.server:
            raise ProtocolError("second CONNECT on the connection")
        elif ptype not in (_FROM_CLIENT if self.server else _FROM_SERVER):
            side = "client" if self.server else "server"
            raise ProtocolError(f"{NAMES[ptype]} must not be sent by the {side}")
        if b0 & 0x0F != _FLAGS.get(ptype, 0):
            raise MalformedPacket(f"{NAMES[ptype]} with reserved fixed header flags 0x{b0 & 0x0F:X}")
        return _DECODERS[ptype](self, b0, buf, p, end)


def _d_connect(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Connect:
    name, p = _utf8(buf, p, end)
    level, p = _byte(buf, p, end)
    bridge = level in (0x83, 0x84)
    version = level & 0x7F if bridge else level
    if name not in ("MQTT", "MQIsdp"):
        raise ProtocolError(f"CONNECT with unknown protocol name {name!r}")
    if (name, version) not in (("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)):
        raise UnsupportedProtocolVersion(f"CONNECT protocol {name!r} with unsupported level {level}")
    # Set before the rest is parsed so an error below is answered in the client's version.
    dec.version = version
    flags, p = _byte(buf, p, end)
    keepalive, p = _u16(buf, p, end)
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 3
    will_retain = flags & 0x20
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag bit 0 is set")
    if will_qos == 3:
        raise MalformedPacket("CONNECT will QoS 3")
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("CONNECT will QoS or retain set without the will flag")
    if flags & 0x40 and not flags & 0x80 and version < MQTT5:
        raise MalformedPacket("CONNECT password flag set without the user name flag")
    props = None
    if version == MQTT5:
        props, p = decode_properties(buf, p, end, CONNECT)
    client_id, p = _utf8(buf, p, end)
    will = None
    if will_flag:
        will_props = None
        if version == MQTT5:
            will_props, p = decode_properties(buf, p, end, WILL)
        will_topic, p = _utf8(buf, p, end)
        will_payload, p = _binary(buf, p, end)
        will = Will(will_topic, will_payload, will_qos, bool(will_retain), will_props)
    username = password = None
    if flags & 0x80:
        username, p = _utf8(buf, p, end)
    if flags & 0x40:
        password, p = _binary(buf, p, end)
    _done(p, end, CONNECT)
    dec._ready = True
    return Connect(client_id, version, name, bool(flags & 0x02), keepalive, username, password, will,
                   props, bridge)


def _d_connack(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Connack:
    flags, p = _byte(buf, p, end)
    if flags & 0xFE:
        raise MalformedPacket(f"CONNACK reserved acknowledge flags set: 0x{flags:02X}")
    code, p = _byte(buf, p, end)
    props = None
    if dec.version == MQTT5:
        props, p = decode_properties(buf, p, end, CONNACK)
    _done(p, end, CONNACK)
    return Connack(bool(flags), code, props)


_ACKS = {PUBACK: Puback, PUBREC: Pubrec, PUBREL: Pubrel, PUBCOMP: Pubcomp}
# Byte 0 of each ack (with its required flags) -> class, for the decoder's inline path.
_SHORT_ACKS = {(t << 4) | _FLAGS.get(t, 0): cls for t, cls in _ACKS.items()}



def _compiled_scan() -> Callable | None:
    """The compiled twin of feed's loop for PUBLISH and short acks (_speedups.c), if it was built
    and the packet classes still have the fields it fills; None: the Python loop does everything
    (also what the tests set to check both)."""
    try:
        from vmqpy.mqtt import _speedups
    except ImportError:
        return None
    publish_fields = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties", "frame")
    ack_fields = ("packet_id", "reason_code", "properties")
    if tuple(f.name for f in dataclasses.fields(Publish)) != publish_fields or any(
            tuple(f.name for f in dataclasses.fields(cls)) != ack_fields for cls in _SHORT_ACKS.values()):
        return None
    _speedups.setup(_TOPICS, Publish, _SHORT_ACKS, tuple(Publish.__dict__[f] for f in publish_fields),
                    {b0: tuple(cls.__dict__[f] for f in ack_fields) for b0, cls in _SHORT_ACKS.items()})
    return _speedups.scan


_scan = _compiled_scan()


def _d_ack(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Puback | Pubrec | Pubrel | Pubcomp:
    ptype = b0 >> 4
    pid, p = _packet_id(buf, p, end, ptype)
    code = 0
    props = None
    if dec.version == MQTT5 and p < end:  # v5 may omit the reason code (success) and properties
        code, p = _byte(buf, p, end)
        if p < end:
            props, p = decode_properties(buf, p, end, ptype)
    _done(p, end, ptype)
    return _ACKS[ptype](pid, code, props)


def _d_subscribe(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Subscribe:
    pid, p = _packet_id(buf, p, end, SUBSCRIBE)
    v5 = dec.version == MQTT5
    props = None
    if v5:
        props, p = decode_properties(buf, p, end, SUBSCRIBE)
    topics = []
    while p < end:
        topic, p = _utf8(buf, p, end)
        opts, p = _byte(buf, p, end)
        if opts & (0xC0 if v5 else 0xFC):
            raise MalformedPacket(f"SUBSCRIBE options reserved bits set: 0x{opts:02X} for {topic!r}")
        if opts & 3 == 3:
            raise MalformedPacket(f"SUBSCRIBE QoS 3 for {topic!r}")
        retain_handling = opts >> 4
        if retain_handling == 3:
            raise ProtocolError(f"SUBSCRIBE retain handling 3 for {topic!r}")
        if opts & 0x04 and topic.startswith("$share/"):
            raise ProtocolError(f"SUBSCRIBE no local on shared subscription {topic!r}")
        topics.append((topic, SubOpts(opts & 3, bool(opts & 0x04), bool(opts & 0x08), retain_handling)))
    if not topics:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return Subscribe(pid, topics, props)


def _d_unsubscribe(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Unsubscribe:
    pid, p = _packet_id(buf, p, end, UNSUBSCRIBE)
    props = None
    if dec.version == MQTT5:
        props, p = decode_properties(buf, p, end, UNSUBSCRIBE)
    topics = []
    while p < end:
        topic, p = _utf8(buf, p, end)
        topics.append(topic)
    if not topics:
        raise ProtocolError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(pid, topics, props)


def _d_suback(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Suback | Unsuback:
    """SUBACK and UNSUBACK: packet id, v5 properties, one reason code per filter (none for v3 UNSUBACK)."""
    ptype = b0 >> 4
    pid, p = _packet_id(buf, p, end, ptype)
    props = None
    if dec.version == MQTT5:
        props, p = decode_properties(buf, p, end, ptype)
    codes = list(buf[p:end])
    if ptype == UNSUBACK and dec.version != MQTT5:
        _done(p, end, ptype)
    elif not codes:
        raise ProtocolError(f"{NAMES[ptype]} without reason codes")
    return (Suback if ptype == SUBACK else Unsuback)(pid, codes, props)


def _d_ping(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Pingreq | Pingresp:
    ptype = b0 >> 4
    _done(p, end, ptype)
    return Pingreq() if ptype == PINGREQ else Pingresp()


def _d_disconnect(dec: Decoder, b0: int, buf: bytes, p: int, end: int) -> Disconnect | Auth:
    """DISCONNECT and AUTH: v5 may omit reason code (success) and properties; v3 DISCONNECT is empty."""
    ptype = b0 >> 4
    code = 0
    props = None
    if dec.version == MQTT5 and p < end:
        code, p = _byte(buf, p, end)
        if p < end:
            props, p = decode_properties(buf, p, end, ptype)
    _done(p, end, ptype)
    return (Disconnect if ptype == DISCONNECT else Auth)(code, props)


_DECODERS: dict[int, Callable[[Decoder, int, bytes, int, int], Packet]] = {
    CONNECT: _d_connect, CONNACK: _d_connack,
    PUBACK: _d_ack, PUBREC: _d_ack, PUBREL: _d_ack, PUBCOMP: _d_ack,
    SUBSCRIBE: _d_subscribe, SUBACK: _d_suback, UNSUBSCRIBE: _d_unsubscribe, UNSUBACK: _d_suback,
    PINGREQ: _d_ping, PINGRESP: _d_ping, DISCONNECT: _d_disconnect, AUTH: _d_disconnect,
}


# --- encoding ---------------------------------------------------------------------------------------------

_SINGLE = [bytes((b,)) for b in range(256)]


def _varint_bytes(n: int) -> bytes:
    if n < 128:
        return _SINGLE[n]
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _e_binary(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def _e_utf8(s: str) -> bytes:
    return _e_binary(s.encode())


_WRITERS: dict[int, Callable[..., bytes]] = {
    BYTE: lambda v: _SINGLE[v],
    UINT16: lambda v: v.to_bytes(2, "big"),
    UINT32: lambda v: v.to_bytes(4, "big"),
    VARINT: _varint_bytes,
    UTF8: _e_utf8,
    BINARY: _e_binary,
    UTF8_PAIR: lambda kv: _e_utf8(kv[0]) + _e_utf8(kv[1]),
}
_MULTI = ("user_property", "subscription_identifier")  # values are lists, one property per item


def encode_properties(props: dict | None, packet_type: int) -> bytes:
    """The property block (length prefix included) of a `packet_type` packet.

    Raises ValueError for an unknown name or one the packet type must not carry.
    """
    if not props:
        return b"\x00"
    parts = []
    for name, value in props.items():
        entry = BY_NAME.get(name)
        if entry is None:
            raise ValueError(f"unknown MQTT 5 property {name!r}")
        pid, dtype, allowed = entry
        if packet_type not in allowed:
            raise ValueError(f"{NAMES[packet_type]} must not carry property {name}")
        write = _WRITERS[dtype]
        for item in (value if name in _MULTI else (value,)):
            parts.append(_SINGLE[pid])
            parts.append(write(item))
    body = b"".join(parts)
    return _varint_bytes(len(body)) + body


def _frame(b0: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return _SINGLE[b0] + _varint_bytes(len(body)) + body


def _publish(topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool, pid: int,
             props: dict | None, version: int) -> tuple[bytes, int]:
    pid_bytes = pid.to_bytes(2, "big") if qos else b""
    prop_bytes = b"" if version != MQTT5 else encode_properties(props, PUBLISH) if props else b"\x00"
    tl = len(topic)
    rl = _varint_bytes(2 + tl + len(pid_bytes) + len(prop_bytes) + len(payload))
    b0 = 0x30 | (dup << 3) | (qos << 1) | retain
    frame = b"".join((_SINGLE[b0], rl, tl.to_bytes(2, "big"), topic, pid_bytes, prop_bytes, payload))
    return frame, (3 + len(rl) + tl if qos else -1)


def publish_frame(topic: bytes, payload: bytes, qos: int, retain: bool, properties: dict | None,
                  version: int) -> tuple[bytes, int]:
    """A complete PUBLISH frame with packet id 0, and the offset of the packet id (-1 for QoS 0).

    A fan-out encodes once; per subscriber the broker patches frame[off:off + 2]
    and the DUP bit (0x08 of byte 0).
    """
    return _publish(topic, payload, qos, retain, False, 0, properties, version)


_B0_RL_U16 = struct.Struct("!BBH")
_U16 = struct.Struct("!H")


def publish_v3(topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool, pid: int) -> bytes:
    """A complete MQTT 3.1/3.1.1 PUBLISH frame with QoS > 0: `_publish` without properties or a template."""
    tl = len(topic)
    rl = 4 + tl + len(payload)
    b0 = 0x30 | dup << 3 | qos << 1 | retain
    if rl < 128:
        return b"".join((_B0_RL_U16.pack(b0, rl, tl), topic, _U16.pack(pid), payload))
    return b"".join((_SINGLE[b0], _varint_bytes(rl), _U16.pack(tl), topic, _U16.pack(pid), payload))


def _props(pk: Packet, version: int, ptype: int) -> bytes:
    return encode_properties(pk.properties, ptype) if version == MQTT5 else b""


def _e_connect(pk: Connect, version: int) -> bytes:
    will = pk.will
    flags = 0x02 if pk.clean_start else 0
    payload = [_e_utf8(pk.client_id)]
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if version == MQTT5:
            payload.append(encode_properties(will.properties, WILL))
        payload += (_e_utf8(will.topic), _e_binary(will.payload))
    if pk.username is not None:
        flags |= 0x80
        payload.append(_e_utf8(pk.username))
    if pk.password is not None:
        flags |= 0x40
        payload.append(_e_binary(pk.password))
    return _frame(CONNECT << 4, _e_utf8("MQIsdp" if version == 3 else "MQTT"),
                  _SINGLE[version | (0x80 if pk.bridge else 0)], _SINGLE[flags],
                  pk.keepalive.to_bytes(2, "big"), _props(pk, version, CONNECT), *payload)


def _e_connack(pk: Connack, version: int) -> bytes:
    return _frame(CONNACK << 4, _SINGLE[int(pk.session_present)], _SINGLE[pk.reason_code],
                  _props(pk, version, CONNACK))


def _e_publish(pk: Publish, version: int) -> bytes:
    return _publish(pk.topic.encode(), pk.payload, pk.qos, pk.retain, pk.dup, pk.packet_id or 0,
                    pk.properties, version)[0]


def ack_frame(b0: int, pid: int) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP (byte 0 `b0`, flags included) in the short form every version
    reads as success: what the broker sends for nearly every QoS 1/2 message."""
    return bytes((b0, 2, pid >> 8, pid & 0xFF))


def _e_ack(pk: Puback | Pubrec | Pubrel | Pubcomp, version: int) -> bytes:
    b0 = (pk.type << 4) | _FLAGS.get(pk.type, 0)
    if version != MQTT5 or (not pk.reason_code and not pk.properties):
        return ack_frame(b0, pk.packet_id)  # the short form v5 allows for success without properties
    return _frame(b0, pk.packet_id.to_bytes(2, "big"), _SINGLE[pk.reason_code], _props(pk, version, pk.type))


def _e_subscribe(pk: Subscribe, version: int) -> bytes:
    parts = [pk.packet_id.to_bytes(2, "big"), _props(pk, version, SUBSCRIBE)]
    for topic, o in pk.topics:
        opts = o.qos
        if version == MQTT5:
            opts |= (o.no_local << 2) | (o.retain_as_published << 3) | (o.retain_handling << 4)
        parts += (_e_utf8(topic), _SINGLE[opts])
    return _frame(0x82, *parts)


def _e_unsubscribe(pk: Unsubscribe, version: int) -> bytes:
    return _frame(0xA2, pk.packet_id.to_bytes(2, "big"), _props(pk, version, UNSUBSCRIBE),
                  *(_e_utf8(t) for t in pk.topics))


def _e_suback(pk: Suback | Unsuback, version: int) -> bytes:
    codes = bytes(pk.reason_codes) if version == MQTT5 or pk.type == SUBACK else b""
    return _frame(pk.type << 4, pk.packet_id.to_bytes(2, "big"), _props(pk, version, pk.type), codes)


def _e_empty(pk: Pingreq | Pingresp, version: int) -> bytes:
    return _frame(pk.type << 4)


def _e_disconnect(pk: Disconnect | Auth, version: int) -> bytes:
    if version != MQTT5 or (not pk.reason_code and not pk.properties):
        return _frame(pk.type << 4)
    return _frame(pk.type << 4, _SINGLE[pk.reason_code], _props(pk, version, pk.type))


_ENCODERS: dict[int, Callable[..., bytes]] = {
    CONNECT: _e_connect, CONNACK: _e_connack, PUBLISH: _e_publish,
    PUBACK: _e_ack, PUBREC: _e_ack, PUBREL: _e_ack, PUBCOMP: _e_ack,
    SUBSCRIBE: _e_subscribe, SUBACK: _e_suback, UNSUBSCRIBE: _e_unsubscribe, UNSUBACK: _e_suback,
    PINGREQ: _e_empty, PINGRESP: _e_empty, DISCONNECT: _e_disconnect, AUTH: _e_disconnect,
}


def encode(packet: Packet, version: int) -> bytes:
    """The wire frame of any packet, client- or server-sent, for protocol level 3, 4 or 5."""
    return _ENCODERS[packet.type](packet, version)
