"""Accepting with several workers: read the CONNECT, then serve here or hand over to the owner.

A connection belongs to the worker that owns its client id (`owner`). Any
worker may accept it; it reads until the CONNECT is complete and, if another
worker owns the client id, passes the fd and the bytes it read to that worker
(links.Peer.handoff). The owner wraps the fd in a `PrereadSocket`,
whose first recv returns those bytes, so the session decodes the CONNECT as
if it had read it itself.
"""

from __future__ import annotations

import socket
import zlib

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import Decoder, MQTTError

RECV_SIZE = 65536


def owner(mountpoint: str, client_id: str, workers: int) -> int:
    """The worker (0..workers-1) that owns a client id: stable across restarts and processes."""
    return zlib.crc32(f"{mountpoint}\x00{client_id}".encode()) % workers


def read_connect(sock: socket.socket, max_packet_size: int) -> tuple[bytes, str | None]:
    """Read until the first packet is complete: (bytes read, client id of a valid CONNECT or None).

    None means the session must see it (bad first packet, EOF, the connect deadline passed): it answers
    as it always does. The accepting greenlet's connect deadline (Listeners._accept) bounds the reads.
    """
    decoder = Decoder(max_packet_size=max_packet_size)
    chunks: list[bytes] = []
    sock.settimeout(None)
    try:
        while True:
            data = sock.recv(RECV_SIZE)
            if not data:
                break
            chunks.append(data)
            packets = decoder.feed(data)
            if packets:
                first = packets[0]
                return b"".join(chunks), first.client_id if isinstance(first, P.Connect) else None
    except (MQTTError, OSError):
        pass
    return b"".join(chunks), None
