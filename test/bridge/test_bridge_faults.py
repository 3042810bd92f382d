"""vmq_bridge under faults: the remote down for a while, the bridge node killed with a disk buffer,
bounded buffers, remotes that refuse, send garbage or close mid-packet, and a node with workers."""

from __future__ import annotations

import socket
import threading

import pytest
import workerkit
from bridgekit import bridge_conf, bridge_row, wait_connected
from broker import wait_until
from clients import TIMEOUT, Paho

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import encode


def _publish_seq(port: int, cid: str, numbers: range, topic: str = "seq/n") -> None:
    """QoS 1 publishes of the numbers, each acknowledged by the local broker."""
    c = Paho(port, cid)
    c.connect()
    for n in numbers:
        c.publish(topic, str(n), 1)
    c.disconnect()


def _remote_session(port: int, cid: str, topic: str = "seq/#") -> Paho:
    """A persistent QoS 1 subscriber on the remote broker (its messages queue while it is away)."""
    c = Paho(port, cid, clean=False)
    c.connect()
    c.subscribe(topic, 1)
    return c


def _numbers(client: Paho, n: int) -> list[int]:
    return [int(m.payload) for m in client.expect(n, timeout=30)]


def test_remote_down_then_back_loses_nothing_and_keeps_order(make_broker, mosquitto, cid):
    m = mosquitto()
    node = make_broker(bridge_conf(m.port, "seq/# out 1", mqtt_version="4", max_outgoing_buffered_messages="1000"))
    wait_connected(node)
    remote = _remote_session(m.port, f"{cid}-r")
    _publish_seq(node.port, f"{cid}-p", range(50))
    assert _numbers(remote, 50) == list(range(50))
    remote.disconnect()
    m.stop()  # graceful: mosquitto keeps the subscriber's session and the bridge's
    wait_until(lambda: bridge_row(node)["status"] == "connecting", what="bridge down")

    _publish_seq(node.port, f"{cid}-p", range(50, 250))
    assert bridge_row(node)["buffer size"] == "200"
    m.start()
    remote = _remote_session(m.port, f"{cid}-r")
    assert _numbers(remote, 200) == list(range(50, 250))
    remote.expect_none()
    row = bridge_row(node)
    assert (row["buffer size"], row["buffer dropped msgs"], row["reconnects"]) == ("0", "0", "1")


def test_disk_buffer_survives_sigkill_of_the_bridge_node(make_broker, mosquitto, cid):
    m = mosquitto()
    _remote_session(m.port, f"{cid}-r").disconnect()
    m.stop()  # the remote is down from here on; its subscriber's session waits on disk
    node = make_broker(bridge_conf(m.port, "seq/# out 1", persistent_queue="on",
                                   max_outgoing_buffered_messages="10000"))
    _publish_seq(node.port, f"{cid}-p", range(500))
    assert bridge_row(node)["buffer size"] == "500"

    node.kill()
    node.start()
    assert bridge_row(node)["buffer size"] == "500"
    queue_dir = node.root / "data" / "vmq_bridge" / "br0"
    assert sum(f.stat().st_size for f in queue_dir.iterdir()) > 0
    _publish_seq(node.port, f"{cid}-p", range(500, 600))
    m.start()
    remote = _remote_session(m.port, f"{cid}-r")
    assert _numbers(remote, 600) == list(range(600))
    remote.expect_none()
    wait_until(lambda: bridge_row(node)["buffer size"] == "0", what="buffer emptied")
    node.stop()
    node.start()
    assert bridge_row(node)["buffer size"] == "0"  # what the remote acknowledged is gone from the disk


def test_buffers_are_bounded_and_drops_counted(make_broker, mosquitto, cid):
    m = mosquitto()
    _remote_session(m.port, f"{cid}-r").disconnect()
    m.stop()
    node = make_broker({**bridge_conf(m.port, "seq/# out 1", max_outgoing_buffered_messages="10"),
                        **bridge_conf(m.port, "seq/# out 1", name="unbuffered")})
    _publish_seq(node.port, f"{cid}-p", range(15))
    rows = {r["name"]: r for r in node.rows("bridge", "show")}
    assert [(rows[b]["buffer size"], rows[b]["buffer max"], rows[b]["buffer dropped msgs"])
            for b in ("br0", "unbuffered")] == [("10", "10", "5"), ("0", "0", "15")]
    ok, out = node.admin("metrics", "show")
    assert "counter.vmq_bridge_dropped_msgs = 20" in out.splitlines()
    m.start()
    remote = _remote_session(m.port, f"{cid}-r")
    for name in ("br0", "unbuffered"):
        wait_connected(node, name)
    _publish_seq(node.port, f"{cid}-p", range(15, 16))
    got = _numbers(remote, 10 + 2)
    assert sorted(got) == [*range(10), 15, 15]  # br0: the first ten, then 15; unbuffered: 15 only


class FakeRemote:
    """A TCP server that answers the bridge's CONNECT as `behaviour` says, counting connections."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    conn.recv(65536)  # the CONNECT
                    self._answer(conn)
                except OSError:
                    pass

    def _answer(self, conn: socket.socket) -> None:
        connack = encode(P.Connack(), 4)
        if self.behaviour == "refuses":
            conn.sendall(encode(P.Connack(reason_code=5), 4))
        elif self.behaviour == "garbage":
            conn.sendall(connack)
            conn.recv(65536)  # the SUBSCRIBE
            conn.sendall(b"\x00\x00 garbage")
        elif self.behaviour == "not mqtt":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        elif self.behaviour == "half a connack":
            conn.sendall(connack[:3])
        elif self.behaviour == "half a publish":
            conn.sendall(connack)
            conn.recv(65536)  # the SUBSCRIBE
            conn.sendall(encode(P.Suback(1, [1]), 4))
            publish = encode(P.Publish("in/x", b"never whole", 1, packet_id=7), 4)
            conn.sendall(publish[:len(publish) // 2])

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize("behaviour, logged", [
    ("refuses", "not authorized"), ("garbage", "MalformedPacket: reserved packet type 0"),
    ("not mqtt", "cannot connect"),
    ("half a connack", "cannot connect: connection closed"), ("half a publish", "connection closed"),
])
def test_a_remote_that_refuses_sends_garbage_or_closes_mid_packet(make_broker, cid, behaviour, logged):
    fake = FakeRemote(behaviour)
    try:
        node = make_broker(bridge_conf(fake.port, "in/# in 1", "out/# out 1", max_outgoing_buffered_messages="10"))
        local = Paho(node.port, f"{cid}-l")
        local.connect()
        local.subscribe("in/#", 1)
        wait_until(lambda: fake.connections >= 2, 20, "the bridge dialling again")
        assert node.ping()
        assert logged in node.log_text()
        assert bridge_row(node)["status"] != "connected"
        local.expect_none()
        assert "Traceback" not in node.log_text() + node.output()
    finally:
        fake.close()


def test_a_node_with_workers_bridges_from_every_worker(make_broker, mosquitto, cid):
    m = mosquitto()
    node = make_broker({**bridge_conf(m.port, "w/# both 1 $empty site/"), "nr_of_workers": "2"})
    wait_connected(node)
    remote = _remote_session(m.port, f"{cid}-r", "site/#")
    subscribers = [workerkit.connect(node, w, f"{cid}-s", 2) for w in (0, 1)]
    for s in subscribers:
        s.subscribe("w/#", 1)
    for w in (0, 1):
        workerkit.connect(node, w, f"{cid}-p", 2).publish(f"w/{w}", f"from worker {w}", 1)
    assert sorted(msg.topic for msg in remote.expect(2)) == ["site/w/0", "site/w/1"]
    remote.publish("site/w/remote", b"in", 1)
    for s in subscribers:
        got = sorted(msg.topic for msg in s.expect(3))
        assert got == ["w/0", "w/1", "w/remote"]
    assert len(node.rows("bridge", "show")) == 1  # one bridge connection, in worker 0
