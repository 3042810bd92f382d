"""The bridge's MQTT client connection to the remote broker, on vmqpy's own codec.

`open_connection` dials (TCP or TLS), sends CONNECT and waits for the CONNACK; `Connection`
sends encoded frames and reads decoded packets. Everything is gevent-cooperative: the node's
sockets are gevent's, no monkey patching needed.
"""

from __future__ import annotations

import socket as _socket
from typing import Any

from gevent import socket, ssl
from gevent.lock import Semaphore

from vmqpy.mqtt import codec
from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.plugins.vmq_bridge.settings import BridgeSettings

CONNECT_TIMEOUT = 10.0
RECV_SIZE = 65536
_TLS_VERSIONS = {"tlsv1": ssl.TLSVersion.TLSv1, "tlsv1.1": ssl.TLSVersion.TLSv1_1,
                 "tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}
_V3_REFUSALS = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
                4: "bad user name or password", 5: "not authorized"}


class ConnectRefused(Exception):
    """The remote broker answered the CONNECT with a refusal."""


class Connection:
    def __init__(self, sock: Any, version: int, max_packet_size: int) -> None:
        self.sock = sock
        self.version = version
        self._decoder = codec.Decoder(version, max_packet_size, server=False)
        self._writing = Semaphore()  # the sender, the reader's acks and the pinger write: one frame run at a time

    def send(self, data: bytes) -> None:
        with self._writing:
            self.sock.sendall(data)

    def send_packet(self, packet: P.Packet) -> None:
        self.send(codec.encode(packet, self.version))

    def recv(self) -> list[P.Packet]:
        """The packets the next read completes (maybe none); EOFError when the remote closed.
        Raises codec.MQTTError on bytes that are not MQTT."""
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise EOFError("connection closed by the remote broker")
        return self._decoder.feed(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def tls_context(opts: dict[str, Any]) -> ssl.SSLContext:
    """The client context for an ssl bridge's options (VerneMQ's keys)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _TLS_VERSIONS[opts["tls_version"]]
    if opts["psk"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # PSK suites as VerneMQ's bridge offers them
        ctx.set_ciphers("PSK")
        ctx.set_psk_client_callback(lambda hint: (opts["identity"], bytes.fromhex(opts["psk"])))
        return ctx
    if opts["insecure"]:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts["cafile"] or opts["capath"]:
        ctx.load_verify_locations(cafile=opts["cafile"] or None, capath=opts["capath"] or None)
    else:
        ctx.load_default_certs()
    if opts["certfile"]:
        ctx.load_cert_chain(opts["certfile"], opts["keyfile"] or None)
    return ctx


def open_connection(bridge: BridgeSettings, tls: ssl.SSLContext | None,
                    max_packet_size: int) -> tuple[Connection, P.Connack]:
    """Dial the remote broker and log in; raises OSError, ssl.SSLError, ConnectRefused, codec.MQTTError.
    `max_packet_size` (0: none) caps what the remote may send, as the node's max_message_size caps clients."""
    family = _socket.AF_INET6 if bridge.opts["inet_version"] == "inet6" else _socket.AF_INET
    addr = socket.getaddrinfo(bridge.host, bridge.port, family, _socket.SOCK_STREAM)[0][4]
    sock = socket.socket(family, _socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(addr)
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=bridge.opts["sni"] or bridge.host)
        conn = Connection(sock, bridge.version, max_packet_size)
        conn.send_packet(_connect(bridge))
        connack = _await_connack(conn)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return conn, connack


def _connect(bridge: BridgeSettings) -> P.Connect:
    opts = bridge.opts
    password = opts["password"].encode() if opts["password"] is not None else None
    return P.Connect(bridge.client_id, bridge.version, "MQIsdp" if bridge.version == 3 else "MQTT",
                     opts["cleansession"], opts["keepalive_interval"], opts["username"], password,
                     None, _session_props(bridge), bridge.version < 5 and opts["try_private"])


def _session_props(bridge: BridgeSettings) -> dict | None:
    if bridge.version < 5 or bridge.opts["cleansession"]:
        return None
    return {"session_expiry_interval": 0xFFFFFFFF}  # v5: cleansession off keeps the session, as v3


def _await_connack(conn: Connection) -> P.Connack:
    while True:
        for packet in conn.recv():
            if packet.type != P.CONNACK:
                raise codec.ProtocolError(f"expected CONNACK, got {codec.NAMES[packet.type]}")
            if packet.reason_code:
                why = _V3_REFUSALS.get(packet.reason_code, str(packet.reason_code)) if conn.version < 5 \
                    else R.name(packet.reason_code)
                raise ConnectRefused(f"CONNACK {packet.reason_code:#04x} ({why})")
            return packet
