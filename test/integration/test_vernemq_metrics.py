"""/metrics carries VerneMQ 2.x's series: prometheus_namespace before VerneMQ's names and types."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from broker import free_port, wait_until
from clients import Paho, Raw

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
    want = {m["name"] for m in vernemq_metrics()} - NOT_EXPORTED
    fresh = set(matching(scrape(node)))  # before any client: every family is there already
    assert want - fresh == set()
    client = Paho(node.port, cid)
    client.connect()
    client.publish(f"{cid}/t", "x", 1)
    exported = set(matching(scrape(node)))
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


def test_counters_by_mqtt_version_as_vernemq_labels_them(node, cid):
    from prometheus_client.parser import text_string_to_metric_families

    v3, v5 = Paho(node.port, f"{cid}-3"), Paho(node.port, f"{cid}-5", version=5)
    for client in (v3, v5):
        client.connect()
    v5.publish(f"{cid}/t", "x", 1)
    v5.publish(f"{cid}/t", "y", 1)
    v3.publish(f"{cid}/t", "z", 1)
    refused = Raw(node.port, 5)
    assert refused.connect("x" * 101).reason_code == 0x85  # longer than max_client_id_size: refused
    [family] = [f for f in text_string_to_metric_families(scrape(node)) if f.name == "vernemq_mqtt_publish_received"]
    by_version = {s.labels["mqtt_version"]: s.value for s in family.samples}
    assert by_version == {"4": 1, "5": 2} and all(s.labels["node"] for s in family.samples)
    text = scrape(node)
    assert text.count("# TYPE vernemq_mqtt_publish_received counter") == 1  # HELP/TYPE once a name
    assert 'vernemq_mqtt_connack_identifier_rejected_sent{node="VerneMQ@127.0.0.1",mqtt_version="5"} 1' in text
    # and by code where VerneMQ has it: v3 CONNACK return_code, MQTT 5 reason_code
    v5.disconnect()
    wait_until(lambda: 'mqtt_version="5",reason_code="normal_disconnect"} 1' in scrape(node), what="DISCONNECT")
    text = scrape(node)
    node_label = 'node="VerneMQ@127.0.0.1"'
    for series in ('mqtt_connack_sent{%s,mqtt_version="4",return_code="success"} 1',
                   'mqtt_connack_sent{%s,mqtt_version="5",reason_code="client_identifier_not_valid"} 1',
                   'mqtt_connack_sent{%s,mqtt_version="5",reason_code="success"} 1',
                   'mqtt_disconnect_received{%s,mqtt_version="5",reason_code="normal_disconnect"} 1'):
        assert "vernemq_" + series % node_label in text, series
    ok, out = node.admin("metrics", "show")  # $SYS, Graphite and metrics show: the totals
    assert ok and "counter.mqtt_publish_received = 3" in out and "counter.mqtt_connack_sent = 3" in out


def test_client_class_series_are_bounded(make_broker, cid):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}", "prometheus_client_class": "client_id",
                        "prometheus_client_class_max": "2", "max_offline_messages": "1"})
    node.http_port = port
    clients = [Paho(node.port, name, clean=False) for name in
               ("sensor-1", "sensor-2", "sensor-3", "gateway-1", "gateway-2", "probe-1")]
    for c in clients:
        c.connect()
        c.subscribe(f"{cid}/all", 1)
    clients[0].drop()  # offline: keeps 1 message, drops the next
    pub = Paho(node.port, f"{cid}-pub")  # of a class of its own: one more for 'other'
    pub.connect()
    pub.publish(f"{cid}/all", "a", 1)
    pub.publish(f"{cid}/all", "b", 1)

    def series(name: str) -> dict[str, float]:
        return {line.split('client_class="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                for line in scrape(node).splitlines() if line.startswith(f"vernemq_{name}{{")}

    assert series("client_class_connections") == {"sensor": 2, "gateway": 2, "other": 2}
    # the offline sensor's one message; the online clients' deliveries leave their queues once acked
    wait_until(lambda: series("client_class_queued_messages") == {"sensor": 1, "gateway": 0, "other": 0},
               what="the online clients' acks")
    assert series("client_class_dropped_messages") == {"sensor": 1, "gateway": 0, "other": 0}
    assert node.admin("set", "prometheus_client_class=off") == (True, "")
    assert series("client_class_connections") == {}
