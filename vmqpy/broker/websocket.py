"""MQTT over WebSocket (RFC 6455) for the ws and wss listeners.

`accept` runs the HTTP upgrade on an accepted (or TLS) socket and returns a
`WebSocket`: an object with the socket methods Session uses (recv, sendall,
settimeout, shutdown, close), so the session reads and writes the MQTT byte
stream as on TCP. The client must offer the subprotocol "mqtt" (MQTT 3.1.1
and 5.0) or "mqttv3.1" (MQTT 3.1); any path is accepted.

The upgrade request is parsed by h11 (HTTP/1.1) and checked here as RFC 6455
4.2.1 asks (GET, Upgrade/Connection, version 13, a 16-byte key); a refusal is
an HTTP 400 (426 for another version). Frames are handled here by
`FrameReader`, because they are the per-message cost: one recv decodes every
frame the read holds (masked, fragmented, control frames in between, frames
split across reads) and returns their payloads joined, so the session still
parses many MQTT packets per read; a payload is unmasked as it arrives, never
buffered whole. Each sendall goes out as one unmasked binary frame. Pings are
answered, a close is answered and ends the stream, and a text frame or any
protocol error closes the connection with its close code (1003, 1002).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import socket
import struct
from typing import NoReturn

import h11
from gevent.lock import Semaphore

from vmqpy import http_limits

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("mqtt", "mqttv3.1")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
RECV_SIZE = 65536

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL_CLOSURE, PROTOCOL_ERROR, UNSUPPORTED_DATA, TOO_BIG = 1000, 1002, 1003, 1009
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")
_XOR = [bytes(a ^ b for a in range(256)) for b in range(256)]  # _XOR[k]: translate table for key byte k


class HandshakeRefused(Exception):
    """The upgrade request was not one we serve (answered with an HTTP error, then closed)."""


class FrameError(Exception):
    """A frame the protocol forbids; `code` is the close code to answer with."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


# -- the upgrade -------------------------------------------------------------------------------------------

def accept(sock: socket.socket, timeout: float | None, limits: dict | None = None,
           max_frame: float = math.inf) -> WebSocket:
    """Complete the server side of the upgrade on `sock`; raises HandshakeRefused or OSError.
    `limits`: the listener's max_request_line_length and max_header_value_length. A data frame
    longer than `max_frame` bytes (max_ws_frame_size) later closes it with 1009."""
    limits = limits or {}
    head_max = limits.get("max_request_line_length", 8000) + 64 * limits.get("max_header_value_length", 4096)
    http = h11.Connection(h11.SERVER, max_incomplete_event_size=max(16384, head_max))
    sock.settimeout(timeout)
    request = None
    while request is None:
        try:
            event = http.next_event()
        except h11.RemoteProtocolError as e:
            _refuse(sock, 400, f"bad HTTP request: {e}")
        if isinstance(event, h11.Request):
            request = event
        elif event is h11.NEED_DATA:
            data = sock.recv(RECV_SIZE)
            if not data:
                raise HandshakeRefused("connection closed during the WebSocket handshake")
            http.receive_data(data)
        else:
            _refuse(sock, 400, f"unexpected {type(event).__name__} in the WebSocket handshake")
    line = f"{request.method.decode()} {request.target.decode('latin-1')} HTTP/{request.http_version.decode()}"
    status = http_limits.too_long(line, [(k.decode(), v.decode("latin-1")) for k, v in request.headers], limits)
    if status:
        _refuse(sock, status, "request line too long" if status == 414 else "header value too long")
    sock.sendall(_upgrade(sock, request))
    ws = WebSocket(sock, http.trailing_data[0], max_frame)  # bytes sent right behind the request are frames
    ws.request_headers = {}  # lower-case name -> value (repeated headers joined by commas)
    for name, value in request.headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        ws.request_headers[key] = f"{ws.request_headers[key]},{text}" if key in ws.request_headers else text
    return ws


def _upgrade(sock: socket.socket, request: h11.Request) -> bytes:
    """The 101 answer to a valid upgrade request (RFC 6455 4.2); refuses an invalid one."""
    headers: dict[bytes, bytes] = {}
    for name, value in request.headers:
        headers[name] = headers[name] + b"," + value if name in headers else value

    def tokens(name: bytes) -> list[str]:
        return [t.strip() for t in headers.get(name, b"").decode("latin-1").split(",") if t.strip()]

    if request.method != b"GET" or "websocket" not in [t.lower() for t in tokens(b"upgrade")] or \
            "upgrade" not in [t.lower() for t in tokens(b"connection")]:
        _refuse(sock, 400, f"not a WebSocket upgrade: {request.method.decode()} {request.target.decode()}")
    if headers.get(b"sec-websocket-version") != b"13":
        _refuse(sock, 426, "WebSocket version is not 13", b"Sec-WebSocket-Version: 13\r\n")
    key = headers.get(b"sec-websocket-key", b"").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid_key = False
    if not valid_key:
        _refuse(sock, 400, "bad Sec-WebSocket-Key")
    offered = tokens(b"sec-websocket-protocol")
    subprotocol = next((p for p in offered if p in SUBPROTOCOLS), None)
    if subprotocol is None:
        _refuse(sock, 400, f"WebSocket subprotocols {offered} offer none of {', '.join(SUBPROTOCOLS)}")
    digest = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + digest + b"\r\nSec-WebSocket-Protocol: " + subprotocol.encode()
            + b"\r\n\r\n")


def _refuse(sock: socket.socket, status: int, why: str, headers: bytes = b"") -> NoReturn:
    reason = {400: b"Bad Request", 426: b"Upgrade Required", 414: b"Request-URI Too Long",
              431: b"Request Header Fields Too Large"}[status]
    try:
        sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n%s\r\n"
                     % (status, reason, headers))
    except OSError:  # the answer is a courtesy; the refusal stands either way
        pass
    raise HandshakeRefused(why)


# -- frames ------------------------------------------------------------------------------------------------

def frame(data: bytes, opcode: int = BINARY) -> bytes:
    """One final, unmasked frame carrying `data` (what a server sends)."""
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n < 65536:
        return _HEAD16.pack(0x80 | opcode, 126, n) + data
    return _HEAD64.pack(0x80 | opcode, 127, n) + data


def close_frame(code: int) -> bytes:
    return frame(_U16.pack(code), CLOSE)


def unmask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n < 1024:  # one big-int XOR: cheapest for the small frames MQTT mostly sends
        stream = (key * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_XOR[key[i]])
    return bytes(out)


class FrameReader:
    """Sans-IO decoder of client-to-server frames: feed bytes, get data payloads and control frames."""

    def __init__(self, max_frame: float = math.inf) -> None:
        self.max_frame = max_frame
        self._buf = b""
        self._left = 0          # payload bytes of the current data frame still to come
        self._key = b""         # its masking key, rotated to where the next payload byte falls
        self._fragmented = False  # a data message is open (its last frame had FIN clear)
        self.closed = False     # a close frame was read: nothing after it counts

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
        """(data payload bytes, [(opcode, payload) of control frames]); raises FrameError."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        controls: list[tuple[int, bytes]] = []
        i, end = 0, len(buf)
        if self._left:  # the rest of a data frame begun in an earlier read
            i = self._payload(buf, 0, end, self._left, self._key, out)
        while i < end and not self.closed:
            head = self._header(buf, i, end)
            if head is None:
                break
            opcode, fin, length, hlen = head
            key = buf[i + hlen - 4:i + hlen]
            if opcode < CLOSE:
                self._fragmented = not fin
                i = self._payload(buf, i + hlen, end, length, key, out)
                continue
            if end - i < hlen + length:
                break
            controls.append((opcode, unmask(buf[i + hlen:i + hlen + length], key)))
            self.closed = opcode == CLOSE
            i += hlen + length
        self._buf = buf[i:] if i < end else b""
        return b"".join(out), controls

    def _payload(self, buf: bytes, i: int, end: int, length: int, key: bytes, out: list[bytes]) -> int:
        """Unmask what is here of a data payload of `length` bytes at i; the offset after it."""
        take = min(length, end - i)
        if take:
            out.append(unmask(buf[i:i + take], key))
        self._left = length - take
        if self._left:
            shift = take & 3  # the next payload byte continues the key where this one stopped
            self._key = key[shift:] + key[:shift]
        return i + take

    def _header(self, buf: bytes, i: int, end: int) -> tuple[int, bool, int, int] | None:
        """(opcode, fin, payload length, header length with the key) of the frame at i; None: incomplete."""
        if end - i < 2:
            return None
        b0, b1 = buf[i], buf[i + 1]
        opcode, fin, length = b0 & 0x0F, bool(b0 & 0x80), b1 & 0x7F
        if b0 & 0x70:
            raise FrameError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
        if not b1 & 0x80:
            raise FrameError(PROTOCOL_ERROR, "unmasked frame from a client")
        if opcode >= CLOSE:
            if opcode > PONG:
                raise FrameError(PROTOCOL_ERROR, f"unknown control opcode {opcode}")
            if not fin or length > 125:
                raise FrameError(PROTOCOL_ERROR, "fragmented or oversized control frame")
        elif opcode == TEXT:
            raise FrameError(UNSUPPORTED_DATA, "text frame (MQTT is carried in binary frames)")
        elif opcode not in (CONTINUATION, BINARY):
            raise FrameError(PROTOCOL_ERROR, f"unknown data opcode {opcode}")
        elif (opcode == CONTINUATION) != self._fragmented:
            raise FrameError(PROTOCOL_ERROR, "continuation frame out of place")
        hlen = 6
        if length == 126:
            hlen = 8
            if end - i < hlen:
                return None
            (length,) = _U16.unpack_from(buf, i + 2)
        elif length == 127:
            hlen = 14
            if end - i < hlen:
                return None
            (length,) = _U64.unpack_from(buf, i + 2)
            if length >> 63:
                raise FrameError(PROTOCOL_ERROR, "payload length with the top bit set")
        if end - i < hlen:
            return None
        if length > self.max_frame and opcode < CLOSE:
            raise FrameError(TOO_BIG, f"frame of {length} bytes, more than max_ws_frame_size")
        return opcode, fin, length, hlen


# -- the stream Session sees -------------------------------------------------------------------------------

class WebSocket:
    """The MQTT byte stream of one accepted WebSocket connection, used like a socket."""

    def __init__(self, sock: socket.socket, pending: bytes = b"", max_frame: float = math.inf) -> None:
        self.sock = sock
        self.reader = FrameReader(max_frame)
        self._pending = pending   # bytes read with the upgrade request
        self._wlock = Semaphore()  # data frames (any greenlet) and control answers (the reader)
        self._eof = False
        self._close_sent = False

    def recv(self, bufsize: int = RECV_SIZE) -> bytes:
        """The payload of the data frames in the next read(s); b"" once the connection ended."""
        while not self._eof:
            raw, self._pending = self._pending or self.sock.recv(bufsize), b""
            if not raw:
                break
            try:
                data, controls = self.reader.feed(raw)
            except FrameError as e:
                log.info("WebSocket client closed: %s", e)
                self._close(e.code)
                break
            for opcode, payload in controls:
                if opcode == PING:
                    self._send_control(frame(payload, PONG))
                elif opcode == CLOSE:
                    self._close(_answer_code(payload))
            if data:
                return data
        self._eof = True
        return b""

    def _close(self, code: int, blocking: bool = True) -> None:
        self._eof = True
        if not self._close_sent:
            self._close_sent = self._send_control(close_frame(code), blocking)

    def _send_control(self, data: bytes, blocking: bool = True) -> bool:
        if not self._wlock.acquire(blocking=blocking):
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self._wlock.release()
        return True

    def sendall(self, data: bytes) -> None:
        out = frame(data)
        with self._wlock:
            self.sock.sendall(out)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def fileno(self) -> int:
        return self.sock.fileno()

    def getpeercert(self, binary_form: bool = False):
        getpeercert = getattr(self.sock, "getpeercert", None)
        return getpeercert(binary_form) if getpeercert is not None else None

    def shutdown(self, how: int) -> None:
        """Close with 1000 unless a write is in progress (never blocks here), then shut the socket."""
        self._close(NORMAL_CLOSURE, blocking=False)
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def _answer_code(payload: bytes) -> int:
    """The code to echo to a client's close frame (RFC 6455 7.4: invalid codes get 1002)."""
    if not payload:
        return NORMAL_CLOSURE
    if len(payload) == 1:
        return PROTOCOL_ERROR
    (code,) = _U16.unpack_from(payload)
    valid = 1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999
    return code if valid else PROTOCOL_ERROR
