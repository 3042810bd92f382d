"""HAProxy PROXY protocol, v1 (text) and v2 (binary): who the proxied client is.

A listener with `proxy_protocol = on` expects every connection to start with
a PROXY header sent by the load balancer in front of it. `read_header`
consumes exactly the header (never a byte of what follows, so a TLS handshake
can start right after it) and returns the client address it carries, or None
when the proxy speaks for itself (v2 LOCAL, v1 UNKNOWN, v2 UNSPEC/UNIX): the
connection's own peer then stands. Anything else raises ProxyError.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import socket
import struct

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEAD = struct.Struct("!12sBBH")  # signature, version/command, family/transport, length
# v2 address families: (address length, ports block) for AF_INET and AF_INET6 over STREAM
_V2_INET = {0x11: (4, 12), 0x21: (16, 36)}

Address = tuple[str, int]


class ProxyError(Exception):
    """A malformed or missing PROXY header: the connection must be closed."""


def read_header(sock: socket.socket) -> Address | None:
    """Consume the PROXY header at the start of `sock`; the client address it names, or None."""
    return read_proxied(sock)[0]


def read_proxied(sock: socket.socket) -> tuple[Address | None, str | None]:
    """Consume the PROXY header: the client address it names (or None), and the CN of the client
    certificate a v2 header carries (PP2_TYPE_SSL's PP2_SUBTYPE_SSL_CN; None: none)."""
    start = _recv_exact(sock, len(V1_PREFIX))
    if start == V1_PREFIX:
        return parse_v1(start + _read_line(sock)), None
    if start == V2_SIGNATURE[:len(start)]:
        head = start + _recv_exact(sock, V2_HEAD.size - len(start))
        length = V2_HEAD.unpack(head)[3]
        body = _recv_exact(sock, length)
        return parse_v2(head, body), ssl_common_name(head, body)
    raise ProxyError(f"no PROXY header (starts with {start!r})")


_PP2_TYPE_SSL, _PP2_SUBTYPE_SSL_CN = 0x20, 0x22


def ssl_common_name(head: bytes, body: bytes) -> str | None:
    """The client certificate CN in the TLVs after a v2 address block (None: none)."""
    family = V2_HEAD.unpack(head)[2]
    tlvs = _tlvs(body[_V2_INET[family][1]:] if family in _V2_INET else b"")
    ssl_tlv = tlvs.get(_PP2_TYPE_SSL)
    if ssl_tlv is None or len(ssl_tlv) < 5:
        return None
    cn = _tlvs(ssl_tlv[5:]).get(_PP2_SUBTYPE_SSL_CN)  # after the client flags (1) and verify (4) fields
    return cn.decode("utf-8", "replace") if cn else None


def _tlvs(data: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at + 3 <= len(data):
        kind, length = data[at], struct.unpack_from("!H", data, at + 1)[0]
        found[kind] = data[at + 3:at + 3 + length]
        at += 3 + length
    return found


def parse_v1(line: bytes) -> Address | None:
    """`PROXY TCP4 src dst sport dport\\r\\n` (or TCP6, or UNKNOWN ...)."""
    if not line.endswith(b"\r\n") or len(line) > V1_MAX:
        raise ProxyError("PROXY v1 header without CRLF within 107 bytes")
    try:
        fields = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyError("PROXY v1 header is not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return None
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyError(f"bad PROXY v1 header {line!r}")
    _, proto, src, dst, sport, dport = fields
    version = 4 if proto == "TCP4" else 6
    for text in (src, dst):
        try:
            if ipaddress.ip_address(text).version != version:
                raise ValueError
        except ValueError:
            raise ProxyError(f"bad {proto} address {text!r} in PROXY v1 header") from None
    _port(dport)  # checked too, though only the source is used
    return src, _port(sport)


def parse_v2(head: bytes, body: bytes) -> Address | None:
    """The 16-byte v2 header and the `length` bytes after it (addresses, then TLVs we ignore)."""
    signature, ver_cmd, family, length = V2_HEAD.unpack(head)
    if signature != V2_SIGNATURE or ver_cmd >> 4 != 2:
        raise ProxyError("bad PROXY v2 signature or version")
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL: a health check by the proxy itself
        return None
    if command != 1:
        raise ProxyError(f"bad PROXY v2 command {command}")
    if family not in _V2_INET:  # UNSPEC, UNIX or datagram: nothing we can show as host:port
        return None
    size, need = _V2_INET[family]
    if len(body) < need:
        raise ProxyError(f"PROXY v2 address block of {len(body)} bytes, {need} needed")
    host = str(ipaddress.ip_address(body[:size]))
    (sport,) = struct.unpack_from("!H", body, 2 * size)
    return host, sport


def _port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise ProxyError(f"bad port {text!r} in PROXY v1 header")
    return int(text)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        data = sock.recv(n)
        if not data:
            raise ProxyError("connection closed inside the PROXY header")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _read_line(sock: socket.socket) -> bytes:
    """The rest of a v1 line up to LF, read without consuming a byte past it (peek, then take)."""
    line = b""
    limit = V1_MAX - len(V1_PREFIX)
    while len(line) < limit:
        peek = sock.recv(limit - len(line), socket.MSG_PEEK)
        if not peek:
            break
        end = peek.find(b"\n")
        line += _recv_exact(sock, len(peek) if end < 0 else end + 1)
        if end >= 0:
            return line
    raise ProxyError("PROXY v1 header without CRLF within 107 bytes")
