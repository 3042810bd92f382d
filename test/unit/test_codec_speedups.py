"""vmqpy/mqtt/_speedups.c, the compiled twin of Decoder.feed's loop, against the Python loop.

test_codec.py runs every decoder test with both; here the two decode the same streams, well
formed and broken, cut into random pieces, and must agree on every packet and every error.
"""

from __future__ import annotations

import random

import pytest

from vmqpy.mqtt import codec
from vmqpy.mqtt.codec import Decoder, MQTTError, encode
from vmqpy.mqtt.packets import Connect, Puback, Pubcomp, Publish, Pubrec, Pubrel, SubOpts, Subscribe

COMPILED_SCAN = codec._scan
pytestmark = pytest.mark.skipif(COMPILED_SCAN is None, reason="vmqpy.mqtt._speedups is not built")


def decode(stream: bytes, cuts: list[int], version: int, scan, max_packet_size: int = 0) -> tuple:
    """(packets, error) of a server-side decoder fed `stream` in pieces ending at `cuts`."""
    saved = codec._scan
    codec._scan = scan
    try:
        dec = Decoder(max_packet_size=max_packet_size)
        packets = dec.feed(encode(Connect("c", version), version))
        start = 0
        for cut in [*cuts, len(stream)]:
            packets += dec.feed(stream[start:cut])
            start = cut
        return packets, None
    except MQTTError as e:
        return packets, (type(e), str(e))
    finally:
        codec._scan = saved


def frames(version: int, rnd: random.Random) -> list[bytes]:
    """Packets a client sends, the usual kinds more often than the rest."""
    props = {"user_property": [("k", "v")]} if version == 5 else None
    out = []
    for _ in range(rnd.randrange(1, 12)):
        kind = rnd.randrange(10)
        pid = rnd.choice((1, 2, 255, 256, 65535))
        topic = rnd.choice(("a/b", "t", "x" * 300, "é/ü", f"new/{rnd.random()}"))
        payload = rnd.choice((b"", b"p", b"q" * 200, bytes(range(256)) * 3))
        if kind < 5:
            qos = rnd.randrange(3)
            out.append(encode(Publish(topic, payload, qos, rnd.random() < 0.2, qos > 0 and rnd.random() < 0.2,
                                      pid if qos else None, props if rnd.random() < 0.3 else None), version))
        elif kind < 8:
            ack = rnd.choice((Puback, Pubrec, Pubrel, Pubcomp))
            code = 0x10 if version == 5 and rnd.random() < 0.2 else 0
            out.append(encode(ack(pid, code), version))
        else:
            out.append(encode(Subscribe(pid, [("a/#", SubOpts(1))]), version))
    return out


def mutate(stream: bytes, rnd: random.Random) -> bytes:
    data = bytearray(stream)
    for _ in range(rnd.randrange(1, 4)):
        what = rnd.randrange(4)
        at = rnd.randrange(len(data)) if data else 0
        if what == 0 and data:
            data[at] = rnd.randrange(256)
        elif what == 1 and data:
            data[at] ^= 1 << rnd.randrange(8)
        elif what == 2:
            del data[at:at + rnd.randrange(1, 4)]
        else:
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4)))
    return bytes(data)


@pytest.mark.parametrize("version", [3, 4, 5])
@pytest.mark.parametrize("broken", [False, True])
def test_compiled_and_python_loops_agree(version, broken):
    rnd = random.Random(f"{version}{broken}")
    for _ in range(1500):
        stream = b"".join(frames(version, rnd))
        if broken:
            stream = mutate(stream, rnd)
        cuts = sorted(rnd.sample(range(1, len(stream)), min(rnd.randrange(3), len(stream) - 1))) if stream else []
        limit = rnd.choice((0, 0, 64, 300))
        assert decode(stream, cuts, version, COMPILED_SCAN, limit) == decode(stream, cuts, version, None, limit)


def test_compiled_loop_leaves_what_it_does_not_know():
    """It stops at a packet it does not take (uncached topic, properties, other types, errors)
    and decodes nothing past it: the Python loop goes on from there."""
    codec._TOPICS.pop(b"fresh/topic", None)
    buf = b"".join((encode(Puback(7), 4), encode(Publish("fresh/topic", b"x", 1, packet_id=3), 4),
                    encode(Puback(8), 4)))
    out: list = []
    assert COMPILED_SCAN(buf, 0, False, 0, out) == 4
    assert out == [Puback(7)]
    out.clear()
    codec._TOPICS[b"fresh/topic"] = "fresh/topic"
    assert COMPILED_SCAN(buf, 0, False, 0, out) == len(buf)
    assert out == [Puback(7), Publish("fresh/topic", b"x", 1, packet_id=3), Puback(8)]
    assert COMPILED_SCAN(encode(Puback(0), 4), 0, False, 0, []) == 0  # packet id 0: Python refuses it
    assert COMPILED_SCAN(buf[:5], 0, False, 0, []) == 4  # incomplete
