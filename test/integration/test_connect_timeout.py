"""mqtt_connect_timeout: one deadline from accept to a complete CONNECT, on every kind of listener."""

from __future__ import annotations

import socket
import time

import pytest
from broker import free_port, wait_until
from clients import Raw
from pki import make_pki
from pkikit import tls_conf

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import encode

TIMEOUT_MS = 600


def silent(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True once the node closes `sock` (whatever it sent first is read and dropped)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


@pytest.fixture
def node(make_broker):
    return make_broker({"mqtt_connect_timeout": str(TIMEOUT_MS)})


def test_a_connection_that_sends_nothing_is_closed_and_counted(node):
    sock = silent(node.port)
    assert closed(sock)
    assert node.metrics()["socket_close_timeout"] == 1


def test_a_connect_trickled_a_byte_at_a_time_is_closed_at_the_deadline(node):
    """Each byte comes well within the timeout, the CONNECT as a whole does not: closed mid-way."""
    frame = encode(P.Connect("trickler-" + "x" * 40, proto_level=4), 4)
    sock = silent(node.port)
    sent = 0
    for byte in frame:
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        sent += 1
        if not still_open(sock):
            break
        time.sleep(0.1)  # the slow client under test: 10 bytes a second against a 0.6 s deadline
    assert sent < len(frame)
    assert closed(sock)
    assert node.metrics()["socket_close_timeout"] == 1


def test_connected_clients_are_governed_by_keep_alive_not_the_connect_timeout(node, cid):
    client = Raw(node.port)
    assert client.connect(cid, keepalive=60).reason_code == 0
    assert closed(silent(node.port))  # a connect timeout has passed since our CONNECT
    client.send(P.Pingreq())
    assert isinstance(client.recv(), P.Pingresp)
    assert node.metrics()["socket_close_timeout"] == 1


def test_tls_handshake_counts_against_the_deadline(make_broker, tmp_path):
    conf = {"mqtt_connect_timeout": str(TIMEOUT_MS), **tls_conf(make_pki(tmp_path), "listener.ssl.default")}
    node = make_broker(conf)
    port = int(conf["listener.ssl.default"].rsplit(":", 1)[1])
    sock = silent(port)
    sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    assert closed(sock)
    assert node.metrics()["socket_close_timeout"] == 1


def test_websocket_upgrade_counts_against_the_deadline(make_broker):
    ws = f"127.0.0.1:{free_port()}"
    node = make_broker({"mqtt_connect_timeout": str(TIMEOUT_MS), "listener.ws.default": ws})
    sock = silent(int(ws.rsplit(":", 1)[1]))
    sock.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    assert closed(sock)
    assert node.metrics()["socket_close_timeout"] == 1


def test_with_workers_the_accepting_worker_applies_the_deadline(make_broker, cid):
    node = make_broker({"mqtt_connect_timeout": str(TIMEOUT_MS), "nr_of_workers": "2"})
    socks = [silent(node.port) for _ in range(4)]  # spread over both workers by the kernel
    sock = socks[0]
    sock.sendall(encode(P.Connect(cid, proto_level=4), 4)[:5])  # a CONNECT begun, never finished
    for s in socks:
        assert closed(s)
    wait_until(lambda: node.metrics()["socket_close_timeout"] == 4, what="4 connect timeouts counted")
    client = Raw(node.port)
    assert client.connect(cid).reason_code == 0
