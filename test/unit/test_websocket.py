"""WebSocket frames: vmqpy's FrameReader against frames made by wsproto's client, split every way."""

from __future__ import annotations

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from vmqpy.broker import websocket as ws


def client_frames() -> FrameProtocol:
    return FrameProtocol(client=True, extensions=[])


def feed_in_pieces(data: bytes, size: int) -> tuple[bytes, list]:
    reader = ws.FrameReader()
    out, controls = [], []
    for i in range(0, len(data), size):
        payload, ctl = reader.feed(data[i:i + size])
        out.append(payload)
        controls += ctl
    return b"".join(out), controls


def test_fragmented_masked_frames_with_a_ping_between_decode_in_any_split():
    c = client_frames()
    stream = b"".join(bytes(x) for x in (
        c.send_data(b"\x10\x0c\x00\x04", fin=False), c.ping(b"p1"), c.send_data(b"MQTT", fin=False),
        c.send_data(b"\x04\x02\x00\x3c\x00\x00"), c.send_data(b""), c.send_data(b"\xc0\x00"), c.pong(b"x")))
    expected = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\xc0\x00"
    for size in range(1, len(stream) + 1):
        assert feed_in_pieces(stream, size) == (expected, [(ws.PING, b"p1"), (ws.PONG, b"x")]), size


@pytest.mark.parametrize("n", [125, 126, 65535, 65536, 300_001])
def test_payload_lengths_7_16_and_64_bit_streamed_across_reads(n):
    payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
    stream = bytes(client_frames().send_data(payload)) * 2
    for size in (1000, 4093, 65536, len(stream)):
        assert feed_in_pieces(stream, size) == (payload * 2, [])


def test_nothing_after_a_close_frame_counts():
    c = client_frames()
    reader = ws.FrameReader()
    data, controls = reader.feed(bytes(c.send_data(b"a")) + bytes(c.close(1000, "bye")) +
                                 bytes(c.send_data(b"after")))
    assert (data, [op for op, _ in controls], reader.closed) == (b"a", [ws.CLOSE], True)


def raw_frame(b0: int, payload: bytes = b"", masked: bool = True, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return bytes((b0, (0x80 if masked else 0) | n)) + (b"\0\0\0\0" if masked else b"") + payload


@pytest.mark.parametrize(("stream", "code"), [
    (raw_frame(0x82, b"x", masked=False), ws.PROTOCOL_ERROR),             # unmasked client frame
    (raw_frame(0xC2, b"x"), ws.PROTOCOL_ERROR),                           # RSV1 without an extension
    (raw_frame(0x81, b"text"), ws.UNSUPPORTED_DATA),                      # text frame
    (raw_frame(0x80, b"x"), ws.PROTOCOL_ERROR),                           # continuation with nothing open
    (raw_frame(0x02, b"x") + raw_frame(0x82, b"y"), ws.PROTOCOL_ERROR),   # new message inside a fragmented one
    (raw_frame(0x09, b"p"), ws.PROTOCOL_ERROR),                           # fragmented ping
    (raw_frame(0x89, length=126) + b"\0\x7e", ws.PROTOCOL_ERROR),         # control payload over 125
    (raw_frame(0x8B), ws.PROTOCOL_ERROR),                                 # unknown control opcode
    (raw_frame(0x83), ws.PROTOCOL_ERROR),                                 # unknown data opcode
    (bytes((0x82, 0xFF)) + b"\x80" + bytes(7) + bytes(4), ws.PROTOCOL_ERROR),  # 64-bit length, top bit set
])
def test_protocol_violations_carry_their_close_code(stream, code):
    with pytest.raises(ws.FrameError) as info:
        ws.FrameReader().feed(stream)
    assert info.value.code == code


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_server_frames_read_back_by_a_client(n):
    payload = b"m" * n
    reader = client_frames()  # a client reads unmasked frames
    reader.receive_bytes(ws.frame(payload) + ws.frame(b"\x00\x01", ws.PONG) + ws.close_frame(1000))
    frames = list(reader.received_frames())
    assert [(f.opcode, f.message_finished) for f in frames] == [
        (Opcode.BINARY, True), (Opcode.PONG, True), (Opcode.CLOSE, True)]
    assert bytes(frames[0].payload) == payload and frames[2].payload[0] == 1000


@pytest.mark.parametrize(("payload", "answer"), [
    (b"", 1000), (b"\x03", 1002), (b"\x03\xe8bye", 1000), (b"\x03\xf3", 1011), (b"\x03\xee", 1002),
    (b"\x0f\xa0", 4000), (b"\x07\xd0", 1002)])
def test_close_code_answered(payload, answer):
    assert ws._answer_code(payload) == answer
