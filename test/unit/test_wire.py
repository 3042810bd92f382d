"""The cluster wire (vmqpy/cluster/wire.py): the cookie proven both ways, frames capped and typed."""

import socket
import threading

import pytest

from vmqpy.cluster.wire import (
    FrameReader,
    WireError,
    accept_handshake,
    dial_handshake,
    loads_msgpack,
    pack_marshal,
    pack_msgpack,
)


def _handshake(cookie_a: str, cookie_d: str) -> tuple[BaseException | None, BaseException | None]:
    a, d = socket.socketpair()
    errors: dict[str, BaseException | None] = {"a": None, "d": None}

    def acceptor():
        try:
            accept_handshake(a, cookie_a)
        except WireError as e:
            errors["a"] = e
        finally:
            a.close()  # a refusing acceptor closes: the dialer sees EOF

    t = threading.Thread(target=acceptor)
    t.start()
    try:
        dial_handshake(d, cookie_d)
    except WireError as e:
        errors["d"] = e
    t.join()
    d.close()
    return errors["a"], errors["d"]


def test_same_cookie_both_sides_proven():
    assert _handshake("secret", "secret") == (None, None)


def test_wrong_cookie_refused_by_the_acceptor_and_seen_by_the_dialer():
    refused, dialer = _handshake("secret", "guess")
    assert "wrong cookie" in str(refused)
    assert dialer is not None


def test_garbage_instead_of_the_handshake_is_refused():
    a, d = socket.socketpair()
    d.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 64)
    with pytest.raises(WireError, match="bad magic"):
        accept_handshake(a, "secret")
    a.close()
    d.close()


def test_msgpack_frames_round_trip_as_tuples():
    records = [(4, "a/b", b"payload", 1, False, {"user_property": [("k", "v")]}, "", None, ("", "c"), ())]
    reader = FrameReader(loads_msgpack, 1 << 20)
    data = pack_msgpack(records)
    assert reader.feed(data[:7]) == []
    out = reader.feed(data[7:])
    assert out == [[(4, "a/b", b"payload", 1, False, {"user_property": (("k", "v"),)}, "", None, ("", "c"), ())]]


def test_oversized_frame_refused_before_it_is_read():
    reader = FrameReader(loads_msgpack, 1024)
    with pytest.raises(WireError, match="more than 1024"):
        reader.feed((10_000_000).to_bytes(4, "big") + b"x")


@pytest.mark.parametrize("body", [b"\xc1", b"\x92\x01\x02", b"\x91\xa3abc"])
def test_undecodable_or_mistyped_frame_refused(body):
    reader = FrameReader(loads_msgpack, 1024)
    with pytest.raises(WireError):
        reader.feed(len(body).to_bytes(4, "big") + body)


def test_marshal_frames_between_workers():
    reader = FrameReader()
    assert reader.feed(pack_marshal([(1, 2)]) + pack_marshal([(3,)])) == [[(1, 2)], [(3,)]]
