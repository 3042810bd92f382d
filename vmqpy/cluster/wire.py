"""Framing and proof of the cookie on the links between processes (links.py).

A frame is a 4-byte big-endian length and a body: a list of records. Between
the workers of one node (a unix socket only this user can open) the body is
`marshal` (the fastest Python codec, and both ends are this code). Between
nodes (TCP) it is msgpack: it rebuilds only plain data, so a hostile peer can
at worst send records that fail their checks, never make us run code. Every
TCP frame is capped (`MAX_TCP_FRAME`): a bigger length is refused before any
of it is read.

Before a TCP link carries a frame, both ends prove that they know the
cluster's `distributed_cookie` without sending it: the acceptor sends a fresh
nonce, the dialer answers with its own nonce and HMAC-SHA256(cookie, both),
and the acceptor answers with the HMAC of both in the other order. Every step
has a fixed size and a deadline, so garbage or silence ends the handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import marshal
import os
import socket
from collections.abc import Callable

import msgpack

MAGIC = b"VMQ1"
NONCE = 32
MAC = 32
HANDSHAKE_TIMEOUT = 5.0
MAX_TCP_FRAME = 64 << 20  # a cluster frame bigger than this is an attack or a bug: the link is closed


class WireError(Exception):
    """The peer broke the protocol (bad magic, wrong cookie, oversized or undecodable frame)."""


def pack_marshal(records: list) -> bytes:
    body = marshal.dumps(records)
    return len(body).to_bytes(4, "big") + body


def pack_msgpack(records: list) -> bytes:
    body = msgpack.packb(records, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def loads_msgpack(data) -> list:
    try:
        records = msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several types for bad input
        raise WireError(f"undecodable frame: {e}") from e
    if not isinstance(records, tuple) or not all(isinstance(r, tuple) and r for r in records):
        raise WireError("a frame must be a list of records")
    return list(records)


class FrameReader:
    """Splits a byte stream into record lists; keeps a partial frame as chunks (no quadratic joins)."""

    __slots__ = ("_chunks", "_have", "_need", "_loads", "_max")

    def __init__(self, loads: Callable = marshal.loads, max_frame: int | None = None) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 4
        self._loads = loads
        self._max = max_frame

    def feed(self, data: bytes) -> list[list]:
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        out = []
        view = memoryview(data)
        n = len(data)
        i = 0
        need = 4
        limit = self._max
        while n - i >= 4:
            size = int.from_bytes(view[i:i + 4], "big")
            if limit is not None and size > limit:
                raise WireError(f"frame of {size} bytes, more than {limit}")
            end = i + 4 + size
            if end > n:
                need = end - i
                break
            out.append(self._loads(view[i + 4:end]))
            i = end
        if i < n:
            self._chunks = [data[i:]]
            self._have = n - i
            self._need = max(need, 4)
        return out


def _mac(cookie: bytes, side: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(cookie, side + first + second, hashlib.sha256).digest()


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        data = sock.recv(n)
        if not data:
            raise WireError("closed during the handshake")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def accept_handshake(sock: socket.socket, cookie: str) -> None:
    """The acceptor's side: WireError unless the dialer proves the cookie (then we prove it too)."""
    key = cookie.encode()
    mine = os.urandom(NONCE)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        sock.sendall(MAGIC + mine)
        answer = _read_exactly(sock, len(MAGIC) + NONCE + MAC)
        if answer[:len(MAGIC)] != MAGIC:
            raise WireError("not a cluster peer (bad magic)")
        theirs, mac = answer[len(MAGIC):len(MAGIC) + NONCE], answer[len(MAGIC) + NONCE:]
        if not hmac.compare_digest(mac, _mac(key, b"d", mine, theirs)):
            raise WireError("wrong cookie")
        sock.sendall(_mac(key, b"a", theirs, mine))
    except TimeoutError as e:
        raise WireError("handshake timed out") from e
    finally:
        sock.settimeout(None)


def dial_handshake(sock: socket.socket, cookie: str) -> None:
    """The dialer's side: WireError unless the acceptor proves the cookie after we did."""
    key = cookie.encode()
    mine = os.urandom(NONCE)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        hello = _read_exactly(sock, len(MAGIC) + NONCE)
        if hello[:len(MAGIC)] != MAGIC:
            raise WireError("not a cluster peer (bad magic)")
        theirs = hello[len(MAGIC):]
        sock.sendall(MAGIC + mine + _mac(key, b"d", theirs, mine))
        if not hmac.compare_digest(_read_exactly(sock, MAC), _mac(key, b"a", mine, theirs)):
            raise WireError("the peer does not know the cookie")
    except TimeoutError as e:
        raise WireError("handshake timed out") from e
    finally:
        sock.settimeout(None)
