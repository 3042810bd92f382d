"""MQTT listeners (tcp, ssl, ws, wss): accept connections, enforce max_connections.

Each accepted connection starts in a pooled reader greenlet (gevent's
StreamServer spawns through wakeups.Wakeups: after the loop turn's input of the
connections already open, such as the DISCONNECT of one this one replaces).
That greenlet first reads the PROXY header (proxy_protocol = on), then runs the
TLS handshake (ssl, wss) and the WebSocket upgrade (ws, wss); docs/listeners.md. Then `Session.start`
serves the connection: a plain TCP session parks once its socket is drained
and the greenlet returns to the pool (the session lives on, woken by its
socket's watcher); the others keep the greenlet.

`mqtt_connect_timeout` is one deadline from accept to a complete CONNECT:
the PROXY header, the TLS handshake, the WebSocket upgrade, the read of the
CONNECT by the accepting worker and the session's own reads all count
against it (a client trickling bytes never earns more time).
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import time
from typing import TYPE_CHECKING

import gevent
from gevent.server import StreamServer

from vmqpy.broker import proxy_protocol, tls, websocket
from vmqpy.broker.preread import PrereadSocket
from vmqpy.broker.session import Session
from vmqpy.broker.wakeups import wakeups
from vmqpy.config_schema import MQTT_KINDS, TLS_KINDS

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)

TYPES = {"tcp": "mqtt", "ssl": "mqtts", "ws": "mqttws", "wss": "mqttwss", "http": "http",
         "https": "https"}  # as vmq-admin shows


class ListenerError(Exception):
    pass


class ConnectTimeout(TimeoutError):
    """Raised into an accepting greenlet when mqtt_connect_timeout passes: an OSError, so every step
    that opens a connection (PROXY header, TLS, WebSocket, a worker's CONNECT read) closes it."""


def bind(spec, backlog: int | None) -> socket.socket:
    """A listening socket on the address of listener `spec`; ListenerError if it cannot listen.
    `backlog` None: bound only, it accepts nothing until someone calls listen() on it."""
    sock = socket.socket(socket.AF_INET6 if ":" in spec.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((spec.host, spec.port))
    except OSError as e:
        sock.close()
        raise ListenerError(f"listener {spec.kind}.{spec.name} on {spec.host}:{spec.port}: "
                            f"{e.strerror or e}") from e
    if backlog is not None:
        sock.listen(backlog)
    return sock


class _Server(StreamServer):
    """Leaves each accepted socket open when the accept handler returns: a parked session
    outlives it, and every path that refuses a connection closes its socket itself."""

    def do_close(self, sock, *args) -> None:
        pass


class Listener:
    """One configured listener and its server."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.kind: str = spec.kind
        self.name: str = spec.name
        self.opts: dict = spec.opts
        self.server: StreamServer | None = None
        self.tls: tls.ssl.SSLContext | None = None  # ssl, wss: built when the listener starts
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        if self.server is not None:
            return self.server.address[:2]
        return self.spec.host, self.spec.port

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.started

    def describe(self) -> dict:
        host, port = self.address
        opts = self.opts
        return {"type": TYPES[self.kind], "name": self.name,
                "status": "running" if self.running else "stopped", "address": host, "port": port,
                "mountpoint": opts.get("mountpoint", ""), "max_conns": opts.get("max_connections", 0),
                # open connections; vmqpy has no ranch connections removed from the count (all = active)
                "active_conns": self.connections, "all_conns": self.connections,
                "tls_version": opts.get("tls_version", ""), "certfile": opts.get("certfile", ""),
                "cafile": opts.get("cafile", ""), "keyfile": opts.get("keyfile", ""),
                "require_certificate": opts.get("require_certificate", False),
                "use_identity_as_username": opts.get("use_identity_as_username", False),
                "psk_support": opts.get("psk_support", False), "pskfile": opts.get("pskfile", ""),
                "allowed_protocol_versions": ",".join(map(str, opts.get("allowed_protocol_versions", ()))),
                "allow_anonymous_override": opts.get("allow_anonymous_override", False)}


def socket_options(options: list) -> list[tuple[int, int, int | bytes]]:
    """setsockopt arguments for tcp_listen_options (VerneMQ's gen_tcp options, an Erlang list):
    nodelay, linger, keepalive, recbuf, sndbuf, tos. send_timeout(_close), buffer and the rest
    are Erlang's socket layer and have no counterpart here."""
    out: list[tuple[int, int, int | bytes]] = []
    for item in options:
        if not (isinstance(item, tuple) and len(item) == 2):
            continue
        name, value = item
        if name == "linger" and isinstance(value, tuple) and len(value) == 2:
            out.append((socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", int(bool(value[0])), int(value[1]))))
        elif name in _SOCKOPTS:
            level, option = _SOCKOPTS[name]
            out.append((level, option, int(value)))
    return out


_SOCKOPTS = {"nodelay": (socket.IPPROTO_TCP, socket.TCP_NODELAY), "keepalive": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
             "recbuf": (socket.SOL_SOCKET, socket.SO_RCVBUF), "sndbuf": (socket.SOL_SOCKET, socket.SO_SNDBUF),
             "tos": (socket.IPPROTO_IP, socket.IP_TOS)}


class Listeners:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.sockopts = socket_options(node.config["tcp_listen_options"])
        self._crl_refresher: gevent.Greenlet | None = None
        self.all: dict[str, Listener] = {
            f"{spec.kind}.{spec.name}": Listener(spec)
            for spec in node.config.listeners if spec.kind in MQTT_KINDS}

    def start_all(self, accept: bool = True) -> None:
        """Start every listener; `accept` False: ready to, but accepting only from `accept_all`
        (a worker's sockets listen once the parent says the node is ready: docs/workers.md)."""
        for listener in self.all.values():
            self.start(listener, accept)
        interval = self.node.config["crl_refresh_interval"]
        if interval and self._crl_refresher is None and any(lst.opts.get("crlfile") for lst in self.all.values()):
            self._crl_refresher = gevent.spawn(self._refresh_crls, interval / 1000)

    def _refresh_crls(self, interval: float) -> None:
        """Every crl_refresh_interval: TLS listeners with a crlfile read it again (VerneMQ's vmq_crl_srv
        purges its CRL cache), so a certificate revoked since is refused from the next handshake on."""
        while True:
            gevent.sleep(interval)
            for listener in self.all.values():
                if listener.running and listener.tls is not None and listener.opts.get("crlfile"):
                    try:
                        listener.tls = tls.server_context(listener.opts)
                    except (OSError, ValueError) as e:  # keep the context it has
                        log.error("listener %s.%s: CRL refresh: %s", listener.kind, listener.name, e)

    def accept_all(self) -> None:
        for listener in self.all.values():
            if listener.server is not None and not listener.running:
                listener.server.start()
                log.info("listener %s.%s on %s:%s accepting", listener.kind, listener.name, *listener.address)

    def start(self, listener: Listener, accept: bool = True) -> None:
        if listener.running:
            return
        spec = listener.spec
        if listener.kind in TLS_KINDS:
            try:
                listener.tls = tls.server_context(listener.opts)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise ListenerError(f"listener {listener.kind}.{listener.name}: TLS: {e}") from e
        inherited = self.node.cluster.listen_socket(listener) if self.node.cluster is not None else None
        server = _Server(inherited or (spec.host, spec.port),
                         lambda sock, addr: self._accept(listener, sock, addr),
                         backlog=None if inherited else 1024, spawn=wakeups.start)
        try:
            server.start() if accept else server.init_socket()
        except OSError as e:
            raise ListenerError(f"listener {listener.kind}.{listener.name} on {spec.host}:{spec.port}: "
                                f"{e.strerror or e}") from e
        listener.server = server
        if accept:
            log.info("listener %s.%s on %s:%s started", listener.kind, listener.name, *listener.address)

    def stop(self, listener: Listener) -> None:
        """Stop accepting; connected clients stay."""
        if listener.server is not None:
            listener.server.close()
            listener.server = None
            log.info("listener %s.%s stopped", listener.kind, listener.name)

    def stop_all(self) -> None:
        for listener in self.all.values():
            self.stop(listener)
        if self._crl_refresher is not None:
            self._crl_refresher.kill(block=False)
            self._crl_refresher = None

    def _accept(self, listener: Listener, sock: socket.socket, addr) -> None:
        seconds = self.node.config["mqtt_connect_timeout"] / 1000  # 0: no deadline
        deadline = time.monotonic() + seconds if seconds else math.inf
        timer = gevent.Timeout.start_new(seconds, ConnectTimeout("CONNECT timeout")) if seconds else None
        try:
            session = self._open_session(listener, sock, addr)
        finally:
            if timer is not None:
                timer.close()
        if session is not None:
            session.start(deadline)
        elif time.monotonic() >= deadline:
            self.node.metrics.counters["socket_close_timeout"] += 1

    def _open_session(self, listener: Listener, sock: socket.socket, addr) -> Session | None:
        """The session for an accepted socket, once its transport is open; None: refused or handed
        over to another worker (every path that refuses closes the socket)."""
        if listener.opts.get("proxy_protocol") and not isinstance(sock, PrereadSocket):  # not handed over
            addr = self._proxied(listener, sock, addr)
            if addr is None:
                return None
        if self.node.cluster is not None:  # nr_of_workers > 1: the worker owning the client id serves it
            sock = self.node.cluster.adopt(listener, sock, addr)
            if sock is None:
                return None
        limit = listener.opts.get("max_connections", 0)
        if limit and listener.connections >= limit:
            log.warning("listener %s.%s: max_connections %s reached, refusing %s",
                        listener.kind, listener.name, limit, addr)
            sock.close()
            return None
        listener.connections += 1
        try:
            for level, option, value in self.sockopts:
                sock.setsockopt(level, option, value)
        except OSError:
            pass
        if listener.kind != "tcp":
            opened = self._open(listener, sock, addr)
            if opened is None:
                listener.connections -= 1
                return None
            sock, addr = opened
        return Session(self.node, sock, addr, listener)

    @staticmethod
    def _proxied(listener: Listener, sock: socket.socket, addr) -> tuple | None:
        """The client address from the PROXY header (None: malformed, the connection is closed)."""
        sock.settimeout(None)  # the connect deadline bounds it
        try:
            proxied, cn = proxy_protocol.read_proxied(sock)
        except (proxy_protocol.ProxyError, OSError) as e:
            log.warning("listener %s.%s: closing %s:%s: %s", listener.kind, listener.name, *addr[:2], e)
            sock.close()
            return None
        addr = proxied or addr
        if cn and listener.opts.get("proxy_protocol_use_cn_as_username"):
            addr = (*addr[:2], cn)  # the third element: the username given by the proxy (Session.preauth)
        return addr

    def _open(self, listener: Listener, sock: socket.socket, addr):
        """TLS handshake (ssl, wss) and WebSocket upgrade (ws, wss): the socket and the client's address
        (X-Forwarded-For's with proxy_xff_support); None when either fails."""
        try:
            if listener.tls is not None:
                sock = tls.handshake(listener.tls, sock, _ms(listener.opts["tls_handshake_timeout"]))
                _check_depth(listener, sock)
            if listener.kind in ("ws", "wss"):  # the connect deadline bounds the upgrade
                sock = websocket.accept(sock, None, listener.opts, self.node.config["max_ws_frame_size"])
                if listener.opts.get("proxy_xff_support"):
                    addr = _forwarded(listener.opts, sock.request_headers, addr)
            return sock, addr
        except (OSError, websocket.HandshakeRefused) as e:  # ssl.SSLError, timeouts are OSErrors
            log.info("listener %s.%s: %s:%s refused: %s", listener.kind, listener.name, *addr[:2], e)
            sock.close()
            return None

    def connection_closed(self, session: Session) -> None:
        session.listener.connections -= 1


def _ms(value: float) -> float | None:
    """A timeout in milliseconds (or infinity) as gevent's seconds (None: none)."""
    return None if value == math.inf else value / 1000


def _check_depth(listener: Listener, sock) -> None:
    """A verified client certificate chain longer than the listener's `depth` intermediates is refused."""
    cert = sock.getpeercert() if listener.opts.get("require_certificate") else None
    if cert and tls.intermediates(listener.tls, cert) > listener.opts["depth"]:
        raise OSError(f"client certificate chain has more than depth = {listener.opts['depth']} intermediate CAs")


def _forwarded(opts: dict, headers: dict[str, str], addr) -> tuple:
    """The client as a trusted proxy names it (VerneMQ's vmq_proxy_xff): the first X-Forwarded-For
    address, the proxy's port, and with proxy_xff_use_cn_as_username the CN header as username."""
    trusted = [ip.strip() for ip in opts.get("proxy_xff_trusted_intermediate", "").split(";") if ip.strip()]
    if addr[0] not in trusted:
        raise websocket.HandshakeRefused(f"X-Forwarded-For from {addr[0]}, not a trusted intermediate")
    origin = headers.get("x-forwarded-for", "").split(",")[0].strip()
    if not origin:
        raise websocket.HandshakeRefused("no X-Forwarded-For header")
    if not opts.get("proxy_xff_use_cn_as_username"):
        return origin, addr[1]
    cn = headers.get(opts.get("proxy_xff_cn_header", "x-ssl-client-cn").lower(), "")
    if not cn:
        raise websocket.HandshakeRefused("no client CN header from the proxy")
    return origin, addr[1], cn
