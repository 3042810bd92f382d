"""/metrics carries VerneMQ 2.x's series: prometheus_namespace before VerneMQ's names and types."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from broker import free_port
from clients import Paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vernemq_keys"))
from metric_names import NOT_EXPORTED, families, matching, vernemq_metrics  # noqa: E402


@pytest.fixture
def node(make_broker):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}"})
    node.http_port = port
    return node


def scrape(node) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_every_broker_core_metric_under_vernemqs_name_and_type(node, cid):
    client = Paho(node.port, cid)
    client.connect()
    client.publish(f"{cid}/t", "x", 1)
    exported = set(matching(scrape(node)))
    want = {m["name"] for m in vernemq_metrics()} - NOT_EXPORTED
    assert want - exported == set()
    assert exported & NOT_EXPORTED == set()
    client.disconnect()


def test_namespace_is_configurable_and_runtime_settable(make_broker):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}", "prometheus_namespace": ""})
    node.http_port = port
    assert "mqtt_publish_received" in families(scrape(node))  # VerneMQ 1.x's bare names
    assert node.admin("set", "prometheus_namespace=acme_") == (True, "")
    found = families(scrape(node))
    assert "acme_mqtt_publish_received" in found and "mqtt_publish_received" not in found


def test_connection_gauges_split_mqtt_and_websocket(node, cid):
    Paho(node.port, cid).connect()
    text = scrape(node)
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["vernemq_active_mqtt_connections"] == 1
    assert values["vernemq_active_mqttws_connections"] == 0
    assert values["vernemq_total_active_connections"] == 1
