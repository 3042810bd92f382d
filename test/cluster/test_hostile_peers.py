"""Whatever reaches the cluster port, the node refuses it, says who sent it, and goes on serving."""

from __future__ import annotations

import socket

import pytest
from broker import free_port, wait_until
from clients import Paho

from vmqpy.cluster.wire import MAGIC, MAX_TCP_FRAME, NONCE, dial_handshake, pack_msgpack


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from broker import Broker

    cport = free_port()
    b = Broker(tmp_path_factory.mktemp("hostile"), {"listener.vmq.clustering": f"127.0.0.1:{cport}",
                                                    "distributed_cookie": "right"})
    b.cport = cport
    b.start()
    yield b
    b.stop()
    b.cleanup()


def _dial(node) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.cport), 5)


def _refusals(node) -> int:
    return node.log_text().count("cluster connection from 127.0.0.1") + node.log_text().count(
        "cluster link from")


def _still_serves(node, cid: str) -> None:
    sub = Paho(node.port, f"{cid}-s")
    sub.connect()
    sub.subscribe(f"{cid}/t", 1)
    pub = Paho(node.port, f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/t", b"x", 1)
    assert sub.messages.get(timeout=10).payload == b"x"
    sub.disconnect()
    pub.disconnect()


def _closed_by_node(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def test_wrong_cookie_refused_and_logged_with_the_address(node, cid):
    before = _refusals(node)
    s = _dial(node)
    with pytest.raises(Exception, match="cookie|closed"):
        dial_handshake(s, "wrong")
    s.close()
    wait_until(lambda: "wrong cookie" in node.log_text() and _refusals(node) > before, what="refusal logged")
    _still_serves(node, cid)


def test_garbage_first_bytes_refused(node, cid):
    s = _dial(node)
    s.recv(len(MAGIC) + NONCE)
    s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00<\x00\x00" * 10)  # an MQTT CONNECT is not a cluster peer
    assert _closed_by_node(s)
    wait_until(lambda: "bad magic" in node.log_text(), what="bad magic logged")
    _still_serves(node, cid)


def test_silent_peer_is_dropped_after_the_handshake_deadline(node, cid):
    s = _dial(node)
    s.recv(len(MAGIC) + NONCE)
    s.sendall(MAGIC + b"\0" * 10)  # stops in the middle of its answer
    _still_serves(node, cid)  # the node serves others meanwhile
    assert _closed_by_node(s)
    wait_until(lambda: "no hello in time" in node.log_text(), what="timeout logged")


def test_oversized_hello_refused(node, cid):
    s = _dial(node)
    dial_handshake(s, "right")
    s.sendall((MAX_TCP_FRAME + 1).to_bytes(4, "big") + b"\0" * 1000)
    assert _closed_by_node(s)
    wait_until(lambda: "more than" in node.log_text(), what="oversized frame logged")
    _still_serves(node, cid)


def test_frames_right_behind_the_hello_are_not_held_to_its_cap(node, cid):
    """A peer coming back sends its hello and its backlog at once: one read may hold both."""
    before = _refusals(node)
    s = _dial(node)
    dial_handshake(s, "right")
    subs = [("", f"{cid}/{i}/#") for i in range(500)]  # ~20 KB, far above the hello's 4 KiB
    s.sendall(pack_msgpack([(0, "peer@127.0.0.1/0", node.conf["nodename"] + "/0")]) + pack_msgpack([(1, subs)]))
    _still_serves(node, cid)
    pub = Paho(node.port, f"{cid}-to-peer")
    pub.connect()
    pub.publish(f"{cid}/7/x", b"for a node not linked yet", 1)  # matches the peer's filters: no crash
    _still_serves(node, f"{cid}-after")
    assert _refusals(node) == before
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(1)  # still open: the node took the link


def test_authenticated_peer_sending_garbage_records_loses_its_link_only(node, cid):
    s = _dial(node)
    dial_handshake(s, "right")
    s.sendall(pack_msgpack([(0, "evil@127.0.0.1/0", node.conf["nodename"] + "/0")]))
    s.sendall(pack_msgpack([(9, "not", "allowed")]))  # a hand-over record: only a local worker may send it
    assert _closed_by_node(s)
    wait_until(lambda: "record kind other nodes may not send" in node.log_text(), what="bad record logged")
    s = _dial(node)
    dial_handshake(s, "right")
    s.sendall(pack_msgpack([(0, "evil@127.0.0.1/0", node.conf["nodename"] + "/0")]))
    s.sendall(pack_msgpack([(4, "too", "short")]))  # a publish record with fields missing
    assert _closed_by_node(s)
    _still_serves(node, cid)


def test_many_idle_connections_do_not_stall_the_node(node, cid):
    socks = [_dial(node) for _ in range(50)]  # each holds the node's handshake for up to 5 s
    _still_serves(node, cid)
    for s in socks:
        s.close()
