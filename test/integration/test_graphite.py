"""Graphite plaintext lines pushed to a real TCP server, reconnecting when it goes away."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

from broker import free_port, wait_until
from clients import Paho


class Recorder(socketserver.ThreadingTCPServer):
    """A Graphite stand-in: records every line; `drop()` closes the current connections."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.lines: list[str] = []
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def find(self, path: str) -> list[list[str]]:
        with self.lock:
            return [line.split() for line in self.lines if line.startswith(path + " ")]

    def drop(self) -> None:
        with self.lock:
            for conn in self.connections:
                conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()
            self.lines.clear()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        with self.server.lock:
            self.server.connections.append(self.request)
        for raw in self.rfile:
            with self.server.lock:
                self.server.lines.append(raw.decode().rstrip("\n"))


def graphite_conf(port: int) -> dict[str, str]:
    return {"graphite_enabled": "on", "graphite_host": "127.0.0.1", "graphite_port": str(port),
            "graphite_interval": "100", "graphite_prefix": "vmq", "graphite_reconnect_timeout": "200"}


def test_lines_reach_graphite(make_broker, cid):
    server = Recorder(free_port())
    try:
        node = make_broker(graphite_conf(server.server_address[1]))
        client = Paho(node.port, cid)
        client.connect()
        client.publish(f"{cid}/g", "x", 1)
        [path, value, stamp] = wait_until(
            lambda: [f for f in server.find("vmq.mqtt.publish.received") if int(f[1]) >= 1][-1:],
            what="graphite line")[0]
        assert abs(int(stamp) - time.time()) < 60
        assert server.find("vmq.active.mqtt.connections")
        client.disconnect()
    finally:
        server.close()


def test_reconnects_after_the_server_drops_or_is_down(make_broker):
    port = free_port()
    node = make_broker(graphite_conf(port))  # nothing listens yet: connect fails, node runs on
    assert node.ping()
    server = Recorder(port)
    try:
        wait_until(lambda: server.find("vmq.socket.open"), what="first lines after the server came up")
        server.drop()
        wait_until(lambda: server.find("vmq.socket.open"), what="lines after reconnecting")
        assert f"graphite 127.0.0.1:{port}: " in node.output()  # the failed connect was logged
    finally:
        server.close()


def test_include_labels_adds_vernemqs_labelled_paths(make_broker, cid):
    server = Recorder(free_port())
    try:
        node = make_broker({**graphite_conf(server.server_address[1]), "graphite_include_labels": "on"})
        client = Paho(node.port, cid, version=5)
        client.connect()
        client.publish(f"{cid}/g", "x", 1)
        wait_until(lambda: [f for f in server.find("vmq.mqtt.publish.received.mqtt_version_5") if int(f[1]) >= 1],
                   what="the labelled line")
        assert server.find("vmq.mqtt.publish.received")  # the total too
        assert not server.find("vmq.socket.open.mqtt_version_4")  # VerneMQ labels no socket counters
        client.disconnect()
    finally:
        server.close()
