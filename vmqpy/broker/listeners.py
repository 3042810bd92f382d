"""MQTT listeners (tcp, ssl): accept connections, enforce max_connections.

Each accepted connection runs `Session.run` in the greenlet gevent's
StreamServer spawns for it, so that greenlet is the connection greenlet.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import TYPE_CHECKING

from gevent.server import StreamServer

from vmqpy.broker.session import Session

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)

MQTT_KINDS = ("tcp", "ssl")


class ListenerError(Exception):
    pass


class Listener:
    """One configured listener and its server."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.kind: str = spec.kind
        self.name: str = spec.name
        self.opts: dict = spec.opts
        self.server: StreamServer | None = None
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
        return {"type": "mqtt" if self.kind == "tcp" else self.kind, "name": self.name,
                "status": "running" if self.running else "stopped", "ip": host, "port": port,
                "mountpoint": self.opts.get("mountpoint", ""),
                "max_conns": self.opts.get("max_connections", 0), "active_conns": self.connections}


class Listeners:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.all: dict[str, Listener] = {
            f"{spec.kind}.{spec.name}": Listener(spec)
            for spec in node.config.listeners if spec.kind in MQTT_KINDS}

    def start_all(self) -> None:
        for listener in self.all.values():
            self.start(listener)

    def start(self, listener: Listener) -> None:
        if listener.running:
            return
        spec = listener.spec
        kwargs = self._ssl_args(listener) if listener.kind == "ssl" else {}
        inherited = self.node.workers.listen_socket(listener) if self.node.workers is not None else None
        server = StreamServer(inherited or (spec.host, spec.port),
                              lambda sock, addr: self._accept(listener, sock, addr),
                              backlog=None if inherited else 1024, **kwargs)
        try:
            server.start()
        except OSError as e:
            raise ListenerError(f"listener {listener.kind}.{listener.name} on {spec.host}:{spec.port}: "
                                f"{e.strerror or e}") from e
        listener.server = server
        log.info("listener %s.%s on %s:%s started", listener.kind, listener.name, *listener.address)

    @staticmethod
    def _ssl_args(listener: Listener) -> dict:
        opts = listener.opts
        args = {"certfile": opts.get("certfile"), "keyfile": opts.get("keyfile")}
        if opts.get("cafile"):
            args["ca_certs"] = opts["cafile"]
        if opts.get("require_certificate"):
            args["cert_reqs"] = ssl.CERT_REQUIRED
        return args

    def stop(self, listener: Listener) -> None:
        """Stop accepting; connected clients stay."""
        if listener.server is not None:
            listener.server.close()
            listener.server = None
            log.info("listener %s.%s stopped", listener.kind, listener.name)

    def stop_all(self) -> None:
        for listener in self.all.values():
            self.stop(listener)

    def _accept(self, listener: Listener, sock: socket.socket, addr) -> None:
        if self.node.workers is not None:  # nr_of_workers > 1: the worker owning the client id serves it
            sock = self.node.workers.adopt(listener, sock, addr)
            if sock is None:
                return
        limit = listener.opts.get("max_connections", 0)
        if limit and listener.connections >= limit:
            log.warning("listener %s.%s: max_connections %s reached, refusing %s",
                        listener.kind, listener.name, limit, addr)
            sock.close()
            return
        listener.connections += 1
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        session = Session(self.node, sock, addr, listener)
        session.run()

    def connection_closed(self, session: Session) -> None:
        session.listener.connections -= 1
