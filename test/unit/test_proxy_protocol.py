"""PROXY protocol headers: parsed, and consumed exactly (the bytes behind stay for TLS or MQTT)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from vmqpy.broker import proxy_protocol as pp

V2_INET = pp.V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", 12) + bytes((10, 0, 0, 9, 10, 0, 0, 1)) + \
    struct.pack("!HH", 5555, 1883)


def read_from(chunks: list[bytes]) -> tuple[object, bytes]:
    """read_header on a socket fed `chunks` one write at a time, then EOF; (result, the bytes left)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(5)
        def write() -> None:
            for chunk in chunks:
                theirs.sendall(chunk)
            theirs.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            result = pp.read_header(ours)
        except pp.ProxyError as e:
            result = e
        writer.join()
        rest = b"".join(iter(lambda: ours.recv(4096), b""))
    return result, rest


@pytest.mark.parametrize("chunks", [
    [b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 1883\r\nMQTT"],
    [b"PROX", b"Y TCP4 192.0.2.1 192.0", b".2.2 1000 1883\r", b"\nMQTT"],
])
def test_v1_consumed_exactly(chunks):
    assert read_from(chunks) == (("192.0.2.1", 1000), b"MQTT")


def test_v2_consumed_exactly_across_writes():
    assert read_from([V2_INET[:7], V2_INET[7:20], V2_INET[20:] + b"\x16\x03\x01"]) == \
        (("10.0.0.9", 5555), b"\x16\x03\x01")


@pytest.mark.parametrize(("family", "body"), [(0x00, b""), (0x31, bytes(216)), (0x12, bytes(12))])
def test_v2_without_a_tcp_address_keeps_the_real_peer(family, body):
    head = pp.V2_SIGNATURE + bytes((0x21, family)) + struct.pack("!H", len(body))
    assert pp.parse_v2(head, body) is None


@pytest.mark.parametrize("chunks", [[b"PROXY TCP4 1.2.3.4"], [b"\r\n\r\n\x00\r\nQU"], [b"GET / HTTP/1.1\r\n"],
                                    [b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n"]])
def test_truncated_or_foreign_input_is_an_error(chunks):
    assert isinstance(read_from(chunks)[0], pp.ProxyError)
