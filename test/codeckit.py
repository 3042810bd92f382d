"""The decoder differential check shared by bench/fuzz and the regression tests in test/unit.

`check(data)` reads the first two bytes of `data` as a recipe (protocol version, server or
client side, a CONNECT in front or not, max packet size, where to cut) and decodes the rest
with the pure-Python loop and with the compiled twin (vmqpy/mqtt/_speedups.c), each fed in
one piece, in two pieces at the cut and one byte at a time. It raises `Divergence` unless
every run ends the same way (same packets, same error type and text, same bytes left
buffered), and lets any exception other than an MQTTError through: both are fuzzer finds.
A stream that decodes is also encoded again and must decode to the same packets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from vmqpy.mqtt import codec
from vmqpy.mqtt.codec import Decoder, MQTTError, encode
from vmqpy.mqtt.packets import (
    MQTT5,
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

COMPILED = codec._scan  # None when the extension was not built: then only Python runs
VERSIONS = (3, 4, 5, 5)
LIMITS = (0, 0, 2, 5, 64, 300, 0, 0)  # max_packet_size; tiny ones reach the size checks


class Divergence(AssertionError):
    """Two ways of decoding the same bytes disagreed."""


@dataclass(frozen=True)
class Recipe:
    version: int
    server: bool
    prefix: bool  # feed a valid CONNECT first, so the stream is read as a connected session's
    limit: int
    cut: int
    stream: bytes

    @classmethod
    def parse(cls, data: bytes) -> Recipe:
        control = data[0] if data else 0
        stream = data[2:]
        cut = (data[1] if len(data) > 1 else 0) % (len(stream) + 1)
        return cls(VERSIONS[control & 3], not control & 4, bool(control & 8), LIMITS[control >> 4 & 7], cut,
                   stream)


def recipe_bytes(stream: bytes, version: int = 5, server: bool = True, prefix: bool = True, limit: int = 0,
                 cut: int = 0) -> bytes:
    """The fuzzer input that `Recipe.parse` reads back as these settings (for seeds and tests)."""
    control = VERSIONS.index(version) | (0 if server else 4) | (8 if prefix else 0) | LIMITS.index(limit) << 4
    return bytes((control, cut & 0xFF)) + stream


_PREFIX = {v: encode(Connect("fuzz", v, "MQIsdp" if v == 3 else "MQTT"), v) for v in (3, 4, 5)}


@dataclass(frozen=True)
class Outcome:
    packets: tuple  # (packet, frame) pairs: frame is compare=False on Publish, but must match too
    error: tuple[str, str] | None
    buffered: int
    version: int | None


def decode(r: Recipe, pieces: list[bytes], scan: Callable | None) -> Outcome:
    """Feed `pieces` to a fresh decoder set up as `r` says, with `scan` as the compiled loop."""
    saved = codec._scan
    codec._scan = scan
    packets: list[Packet] = []
    error = None
    try:
        dec = Decoder(max_packet_size=r.limit) if r.server else Decoder(r.version, r.limit, server=False)
        if r.server and r.prefix:
            packets += dec.feed(_PREFIX[r.version])
        for piece in pieces:
            packets += dec.feed(piece)
    except MQTTError as e:
        error = (type(e).__name__, str(e))
    finally:
        codec._scan = saved
    buffered = 0 if error else sum(map(len, dec._rest))
    return Outcome(tuple((p, getattr(p, "frame", None)) for p in packets), error, buffered, dec.version)


def _same_end(a: Outcome, b: Outcome) -> bool:
    """Equal as far as the cut can show: packets decoded in the feed that raised are lost."""
    return a.error == b.error and (a.error is not None or a == b)


def _reencoded(r: Recipe, out: Outcome) -> Outcome:
    """The packets of `out` encoded again and decoded by a fresh decoder."""
    version = out.version or r.version
    frames = b"".join(encode(p, version) for p, _ in out.packets)
    again = Recipe(version, r.server, False, 0, 0, frames)  # a prefix CONNECT is among the packets
    return decode(again, [frames], None)


def check(data: bytes) -> Outcome:
    """Raise Divergence if the decoders or the ways of feeding disagree on `data`; the outcome otherwise."""
    r = Recipe.parse(data)
    s = r.stream
    ways = {"whole": [s], "cut": [s[:r.cut], s[r.cut:]], "bytes": [s[k:k + 1] for k in range(len(s))]}
    scans = {"python": None, "compiled": COMPILED} if COMPILED is not None else {"python": None}
    # Python first: it fills the topic cache, without which the compiled loop leaves PUBLISH to Python.
    results = {(way, name): decode(r, pieces, scan) for way, pieces in ways.items() for name, scan in scans.items()}
    base = results["whole", "python"]
    for (way, name), out in results.items():
        expected = results[way, "python"] if name != "python" else base
        if not (out == expected if name != "python" else _same_end(out, expected)):
            raise Divergence(f"{r}: {way}/{name} gave {out}, expected {expected}")
    if base.error is None and base.packets:
        again = _reencoded(r, base)
        if again.error is not None or [p for p, _ in again.packets] != [p for p, _ in base.packets]:
            raise Divergence(f"{r}: decoded {base.packets}, encoded again and decoded {again}")
    return base


def _samples(version: int) -> tuple[list[Packet], list[Packet]]:
    """(what a client sends, what a server sends) in `version`: the fuzzer's seeds."""
    v5 = version == MQTT5
    user = {"user_property": [("k", "v")]} if v5 else None
    will = Will("w/t", b"bye", 1, True, {"will_delay_interval": 5, "content_type": "c"} if v5 else None)
    client = [Connect("c", version, "MQIsdp" if version == 3 else "MQTT", False, 30, "u", b"p", will,
                      {"session_expiry_interval": 10, "receive_maximum": 5} if v5 else None),
              Publish("a/b", b"x"), Publish("a/b", b"y", 1, packet_id=1, properties=user),
              Publish("t", b"", 2, True, True, 2, {"topic_alias": 1, "message_expiry_interval": 9} if v5 else None),
              Puback(1), Pubrec(2), Pubrel(2), Pubcomp(2),
              Subscribe(3, [("a/#", SubOpts(1, v5, v5, 2 if v5 else 0)), ("$share/g/x", SubOpts(2))],
                        {"subscription_identifier": [7]} if v5 else None),
              Unsubscribe(4, ["a/#", "b"], user), Pingreq(), Disconnect()]
    server = [Connack(True, 0, {"receive_maximum": 10, "topic_alias_maximum": 3} if v5 else None),
              Publish("a/b", b"x", 1, packet_id=9, properties={"subscription_identifier": [1, 2]} if v5 else None),
              Puback(1), Pubrec(2), Pubrel(2), Pubcomp(2), Suback(3, [1, 0x80], user),
              Unsuback(4, [0, 0x11] if v5 else []), Pingresp()]
    if v5:
        extra = [Puback(1, 0x10, {"reason_string": "r"}), Pubrel(2, 0x92), Disconnect(0x04, user),
                 Auth(0x18, {"authentication_method": "m", "authentication_data": b"d"})]
        client += extra
        server += extra
    return client, server


def seeds() -> list[bytes]:
    """Fuzzer inputs made of valid packets of every type and version, alone and in streams."""
    out = []
    for version in (3, 4, 5):
        client, server = _samples(version)
        frames = [encode(p, version) for p in client]
        out.append(recipe_bytes(b"".join(frames), version, prefix=False, cut=len(frames[0]) + 3))
        out += [recipe_bytes(f, version, prefix=k != 0, cut=len(f) // 2) for k, f in enumerate(frames)]
        back = [encode(p, version) for p in server]
        out.append(recipe_bytes(b"".join(back), version, server=False, cut=5))
        out += [recipe_bytes(f, version, server=False, cut=len(f) // 2) for f in back]
        # A valid PUBLISH caches its topic; what follows reaches each place the compiled loop hands back.
        cached = encode(Publish("a/b", b"x"), version)
        props = b"\x00" if version == MQTT5 else b""
        out += [recipe_bytes(cached + bytes((b0, len(body))) + body, version, limit=limit) for b0, body, limit in (
            (0x32, b"\x00\x03a/b\x00\x00" + props, 0),     # QoS 1, packet id 0
            (0x32, b"\x00\x03a/b\x00", 0),                  # ends inside the packet id
            (0x30, b"\x00\x03a/b", 0),                       # (v5: no property length)
            (0x30, b"\x00\x03a/b\x03\x23\x00\x01", 0),   # (v5: a topic alias property)
            (0x36, b"\x00\x03a/b\x00\x01" + props, 0),     # QoS 3
            (0x38, b"\x00\x03a/b" + props, 0),               # DUP on QoS 0
            (0x40, b"\x00\x00", 0),                          # PUBACK with packet id 0
            (0x30, b"\x00\x03a/b" + props + bytes(80), 64),  # beyond the max packet size
        )]
        out.append(recipe_bytes(cached + b"\x30\xff\xff\xff\xff\x7f", version))  # 5-byte remaining length
    return out


def mutants(rnd: random.Random, count: int) -> list[bytes]:
    """`count` seeds with a few random byte edits each: mostly broken, some still valid."""
    pool = seeds()
    out = []
    for _ in range(count):
        data = bytearray(rnd.choice(pool))
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.randrange(2, len(data)) if len(data) > 2 else len(data)
            edit = rnd.randrange(4)
            if edit == 0 and at < len(data):
                data[at] = rnd.randrange(256)
            elif edit == 1 and at < len(data):
                data[at] ^= 1 << rnd.randrange(8)
            elif edit == 2:
                del data[at:at + rnd.randrange(1, 4)]
            else:
                data[at:at] = rnd.randbytes(rnd.randrange(1, 4))
        out.append(bytes(data))
    return out
