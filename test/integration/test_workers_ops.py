"""nr_of_workers > 1: operations see the node, not one worker (docs/workers.md, "Admin and operations").

Clients are pinned to workers by client id (accept.owner); every figure
checked here would be one worker's share if it were not summed over the node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request

import pytest
from broker import free_port, wait_until
from clients import Raw
from prometheus_client.parser import text_string_to_metric_families
from workerkit import connect, on, worker_pids

from vmqpy.mqtt import packets as P

SYS = "$SYS/VerneMQ@127.0.0.1/"


def start(make_broker, workers: int = 2, **conf: str):
    port = free_port()
    node = make_broker({"nr_of_workers": str(workers), "listener.http.default": f"127.0.0.1:{port}", **conf})
    node.http_port = port
    return node


def get(node, path: str, key: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}", headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(node, path: str, key: str = "") -> tuple[int, object]:
    status, body = get(node, path, key)
    return status, json.loads(body)


def scrape(node) -> dict[str, float]:
    status, body = get(node, "/metrics")
    assert status == 200
    return {f.name: f.samples[0].value for f in text_string_to_metric_families(body.decode())}


def publish_from_both(node, cid: str) -> list:
    """A client on each worker; worker 0's publishes once, worker 1's twice (QoS 1, acknowledged)."""
    clients = [connect(node, w, f"{cid}-p{w}", 2) for w in (0, 1)]
    for n, c in enumerate(clients, 1):
        for _ in range(n):
            c.publish(f"{cid}/m", "x", 1)
    return clients


def test_metrics_and_status_json_are_the_nodes(make_broker, cid):
    node = start(make_broker)
    clients = publish_from_both(node, cid)
    clients[1].publish(f"{cid}/kept", "r", 1, retain=True)  # every worker holds it: counted once
    wait_until(lambda: scrape(node)["retain_messages"] == 1, what="the retained message on worker 0")
    metrics = scrape(node)
    assert metrics["mqtt_connect_received"] == 2
    assert metrics["mqtt_publish_received"] == 4
    assert metrics["active_mqtt_connections"] == 2
    assert metrics["system_wallclock"] > 0
    status, [nodes] = get_json(node, "/status.json")
    info = nodes["VerneMQ@127.0.0.1"]
    assert status == 200 and info["running"]
    assert (info["num_online"], info["msg_in"], info["num_retained"]) == (2, 4, 1)
    for c in clients:
        c.disconnect()


def test_sys_publishes_the_node_totals_once_per_interval(make_broker, cid):
    node = make_broker({"nr_of_workers": "2", "systree_interval": "100"})
    sub = connect(node, 1, f"{cid}-s", 2)
    sub.subscribe(SYS + "mqtt/publish/received", 0)
    clients = publish_from_both(node, cid)
    wait_until(lambda: sub.expect(1)[0].payload == b"3", what="$SYS with both workers' publishes")
    # one publisher of node totals: no interval shows one worker's share
    assert [m.payload for m in sub.expect(5)] == [b"3"] * 5
    for c in (sub, *clients):
        c.disconnect()


class Carbon:
    """A Graphite server keeping the values it receives for one metric path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.values: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile() as lines:
            for line in lines:
                path, value, _stamp = line.split()
                if path == self.path:
                    self.values.append(value)

    def close(self) -> None:
        self.server.close()


def test_graphite_gets_the_node_totals(make_broker, cid):
    carbon = Carbon("vmq.mqtt.publish.received")
    try:
        node = make_broker({"nr_of_workers": "2", "graphite_enabled": "on", "graphite_host": "127.0.0.1",
                            "graphite_port": str(carbon.port), "graphite_interval": "100", "graphite_prefix": "vmq"})
        clients = publish_from_both(node, cid)
        first = wait_until(lambda: "3" in carbon.values and carbon.values.index("3") + 1, what="graphite total")
        wait_until(lambda: len(carbon.values) >= first + 5, what="five more reports")
        assert set(carbon.values[first - 1:]) == {"3"}  # one reporter of node totals
        for c in clients:
            c.disconnect()
    finally:
        carbon.close()


def health(node) -> tuple[int, object]:
    return get_json(node, "/health")


def test_health_follows_every_worker(make_broker):
    node = start(make_broker)
    assert health(node) == (200, {"status": "OK"})
    os.kill(worker_pids(node)[1][0], signal.SIGKILL)
    status, body = wait_until(lambda: (h := health(node))[0] == 503 and h, what="503 with worker 1 dead")
    assert body["status"] == "DOWN" and any(r.startswith("Worker 1") for r in body["reasons"]), body
    wait_until(lambda: health(node)[0] == 200, 30, "200 once the supervisor restarted worker 1")
    assert node.admin("listener", "stop", "address=127.0.0.1", f"port={node.port}") == (True, "Done")
    status, body = health(node)
    assert status == 503 and body["reasons"] == [f"Worker {k}: Listeners are not ready: tcp.default" for k in (0, 1)]
    assert node.admin("listener", "start", "address=127.0.0.1", f"port={node.port}") == (True, "Done")
    assert health(node) == (200, {"status": "OK"})


def raw(node, worker: int, prefix: str) -> Raw | None:
    """A raw connection whose client id `worker` owns; None when the node refused it."""
    r = Raw(node.port)
    if isinstance(r.connect(on(worker, prefix, 2)), P.Connack):
        return r
    r.close()
    return None


def active_conns(node) -> int:
    return int(next(r["active_conns"] for r in node.rows("listener", "show") if r["port"] == str(node.port)))


def test_max_connections_holds_for_the_node(make_broker, cid):
    node = make_broker({"nr_of_workers": "2", "listener.tcp.default.max_connections": "3"})
    kept = [raw(node, w, f"{cid}-{i}") for i, w in enumerate((0, 0, 1))]
    assert all(kept) and active_conns(node) == 3
    assert raw(node, 1, f"{cid}-x1") is None  # worker 1 serves one: the node's three count
    assert raw(node, 0, f"{cid}-x0") is None
    wait_until(lambda: "max_connections 3 reached on the node" in node.log_text(), what="refusal logged")
    kept[0].close()  # worker 0's: worker 1 learns it only when it asks (recount)
    wait_until(lambda: active_conns(node) == 2, what="the closed connection counted out")
    again = raw(node, 1, f"{cid}-again")
    assert again is not None
    assert raw(node, 0, f"{cid}-y0") is None and raw(node, 1, f"{cid}-y1") is None
    for r in (*kept[1:], again):
        r.close()


# -- listing commands over a node shared by the tests below ---------------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from broker import Broker

    port = free_port()
    b = Broker(tmp_path_factory.mktemp("workers-ops"), {"nr_of_workers": "2",
                                                         "listener.http.default": f"127.0.0.1:{port}"}).start()
    b.http_port = port
    yield b
    b.stop()
    b.cleanup()


def test_session_show_lists_every_worker(node, cid):
    clients = [connect(node, w, f"{cid}-{w}", 2) for w in (0, 1)]
    ids = sorted(c.c._client_id.decode() for c in clients)
    rows = node.rows("session", "show", "--client_id", "--limit=1000")
    assert ids == sorted(r["client_id"] for r in rows if r["client_id"].startswith(cid))
    assert len(node.rows("session", "show", "--client_id", "--limit=1")) == 1  # --limit holds for the node
    ok, key = node.admin("api-key", "create")
    assert ok
    status, body = get_json(node, "/api/v1/session/show?--client_id&--limit=1000", key)
    assert status == 200 and ids == sorted(r["client_id"] for r in body["table"] if r["client_id"].startswith(cid))
    for c in clients:
        c.disconnect()


def test_listener_show_node_status_and_store_show_are_one_node(node, cid):
    clients = [connect(node, w, f"{cid}-{w}", 2) for w in (0, 1)]
    clients[0].publish(f"{cid}/kept", "r", 1, retain=True)
    [mqtt] = [r for r in node.rows("listener", "show") if r["port"] == str(node.port)]  # one row, not one a worker
    assert mqtt["status"] == "running"
    wait_until(lambda: active_conns(node) == 2, what="both workers' connections")  # earlier tests' are gone
    wait_until(lambda: node.rows("node", "status")[0]["retained"] == "1", what="retained counted once")
    [status] = node.rows("node", "status")
    assert int(status["connections"]) >= 2
    assert len(node.rows("store", "show")) == 1
    clients[0].publish(f"{cid}/kept", "", 1, retain=True)
    for c in clients:
        c.disconnect()


def test_trace_client_runs_where_the_client_is(node, cid):
    client = connect(node, 1, cid, 2)
    ok, out = node.admin("trace", "client", f"client-id={client.c._client_id.decode()}", "--trace-timeout=200")
    assert ok and "New session with peer" in out, out
    client.disconnect()
