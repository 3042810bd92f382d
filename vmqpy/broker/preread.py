"""A socket handed over with bytes already read from it (a CONNECT read by another worker)."""

from __future__ import annotations

import socket

from gevent import socket as gsocket


class PrereadSocket(gsocket.socket):
    """A gevent socket whose first recv returns bytes read before it was handed over."""

    preread = b""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = self.preread
        if data:
            self.preread = b""
            return data
        return super().recv(bufsize, flags)

    @classmethod
    def adopt(cls, fd: int, preread: bytes) -> PrereadSocket:
        sock = cls(fileno=fd)
        sock.preread = preread
        return sock

    @classmethod
    def wrap(cls, sock: socket.socket, preread: bytes) -> PrereadSocket:
        return cls.adopt(sock.detach(), preread)
