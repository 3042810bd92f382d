"""The HTTP listener: /health, /metrics (Prometheus), /status, /api/v1 with API keys, http_modules."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from broker import free_port
from clients import Paho
from prometheus_client.parser import text_string_to_metric_families


def get(node, path: str, key: str | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}", headers=headers or {})
    if key is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(node, path: str, key: str | None = None) -> tuple[int, object]:
    status, _, body = get(node, path, key)
    return status, json.loads(body)


def start(make_broker, **conf: str):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}", **conf})
    node.http_port = port
    return node


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from broker import Broker

    port = free_port()
    n = Broker(tmp_path_factory.mktemp("http"), {"listener.http.default": f"127.0.0.1:{port}"}).start()
    n.http_port = port
    yield n
    n.stop()
    n.cleanup()


@pytest.fixture(scope="module")
def key(node) -> str:
    ok, key = node.admin("api-key", "create")
    assert ok
    return key


def test_health_follows_the_mqtt_listeners(make_broker):
    node = start(make_broker)
    assert get_json(node, "/health") == (200, {"status": "OK"})
    assert node.admin("listener", "stop", "address=127.0.0.1", f"port={node.port}") == (True, "Done")
    status, body = get_json(node, "/health")
    assert status == 503 and body["status"] == "DOWN"
    assert body["reasons"] == ["Listeners are not ready: tcp.default"]
    assert node.admin("listener", "start", "address=127.0.0.1", f"port={node.port}") == (True, "Done")
    assert get_json(node, "/health") == (200, {"status": "OK"})


def test_metrics_in_prometheus_text_format(node, cid):
    client = Paho(node.port, cid)
    client.connect()
    for _ in range(3):
        client.publish(f"{cid}/m", "x", 1)
    status, headers, body = get(node, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# HELP mqtt_publish_received The number of PUBLISH packets received.\n" in text
    assert "# TYPE mqtt_publish_received counter\n" in text
    assert "# TYPE active_mqtt_connections gauge\n" in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sample] = families["mqtt_publish_received"].samples
    assert sample.labels == {"node": "VerneMQ@127.0.0.1"} and sample.value >= 3
    assert families["active_mqtt_connections"].type == "gauge"
    assert families["active_mqtt_connections"].samples[0].value >= 1
    client.disconnect()


def test_status_page_and_json(node, cid):
    status, headers, body = get(node, "/status")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"status.json" in body
    client = Paho(node.port, cid)
    client.connect()
    status, [nodes] = get_json(node, "/status.json")  # VerneMQ's shape: [{node: figures}]
    info = nodes["VerneMQ@127.0.0.1"]
    assert status == 200 and info["running"] and info["num_online"] >= 1
    assert {"uptime", "num_subscriptions", "num_retained", "num_offline", "msg_in", "msg_out", "queued",
            "netsplits", "mystatus", "listeners", "version"} <= set(info)
    assert info["mystatus"] == [[{"VerneMQ@127.0.0.1": True}]]
    client.disconnect()


def test_api_v1_needs_a_valid_mgmt_key(node, key):
    status, headers, _ = get(node, "/api/v1/session/show")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="VerneMQ"'
    assert get(node, "/api/v1/session/show", "wrong")[0] == 401
    ok, status_key = node.admin("api-key", "create", "scope=status")
    assert get(node, "/api/v1/session/show", status_key)[0] == 401
    assert get(node, "/api/v1/session/show", headers={"x-api-key": key})[0] == 200
    ok, gone = node.admin("api-key", "create")
    assert get(node, "/api/v1/cluster/show", gone)[0] == 200
    node.admin("api-key", "delete", f"key={gone}")
    assert get(node, "/api/v1/cluster/show", gone)[0] == 401


def test_api_v1_runs_admin_commands(node, key, cid):
    client = Paho(node.port, cid)
    client.connect()
    status, body = get_json(node, f"/api/v1/session/show?--client_id={cid}&--client_id&--is_online", key)
    assert (status, body) == (200, {"type": "table", "table": [{"client_id": cid, "is_online": True}]})
    assert get_json(node, "/api/v1/cluster", key)[1] == {
        "type": "table", "table": [{"Node": "VerneMQ@127.0.0.1", "Running": True}]}
    assert get_json(node, "/api/v1/set?max_inflight_messages=7", key) == (200, [])
    status, body = get_json(node, "/api/v1/show?max_inflight_messages", key)
    assert body["table"] == [{"node": "VerneMQ@127.0.0.1", "max_inflight_messages": "7"}]
    assert get_json(node, f"/api/v1/session/disconnect?client-id={cid}&--cleanup", key) == (
        200, {"type": "text", "text": "Done"})
    assert client.disconnected.wait(10)
    status, body = get_json(node, "/api/v1/no/such/command", key)
    assert status == 400 and body["type"] == "alert"


def test_api_keys_survive_a_restart(make_broker):
    node = start(make_broker)
    ok, key = node.admin("api-key", "create")
    node.restart()
    assert get(node, "/api/v1/cluster/show", key)[0] == 200


def test_http_modules_per_listener(make_broker):
    node = start(make_broker, **{"listener.http.default.http_modules": "vmq_health_http"})
    ok, key = node.admin("api-key", "create")
    assert get(node, "/health")[0] == 200
    assert get(node, "/metrics")[0] == 404
    assert get(node, "/status")[0] == 404
    assert get(node, "/api/v1/cluster/show", key)[0] == 404
    ok, out = node.admin("listener", "show")
    assert "| http " in out
