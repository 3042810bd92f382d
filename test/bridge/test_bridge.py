"""vmq_bridge against a real mosquitto and a second vmqpy node: directions, prefixes, QoS, protocol
versions, loop prevention, TLS, vmq-admin bridge show, metrics and bad config."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from authkit import vmq_passwd
from bridgekit import bridge_conf, bridge_row, wait_connected
from broker import wait_until
from clients import V5, V311, Paho
from pki import make_pki


def _client(port: int, cid: str, *subscriptions: tuple[str, int], version: int = V311) -> Paho:
    c = Paho(port, cid, version)
    c.connect()
    for topic, qos in subscriptions:
        c.subscribe(topic, qos)
    return c


def _received(client: Paho, n: int) -> list[tuple[str, bytes, int]]:
    return sorted((m.topic, m.payload, m.qos) for m in client.expect(n))


@pytest.mark.parametrize("version", ["3", "4", "5"])
def test_out_and_in_with_prefixes_and_each_qos_to_mosquitto(make_broker, mosquitto, cid, version):
    m = mosquitto()
    node = make_broker(bridge_conf(m.port, "sensors/# out 2 edge/ site1/", "cmd/+ in 2 $empty central",
                                   "q1/# both 1", mqtt_version=version))
    wait_connected(node)
    remote = _client(m.port, f"{cid}-r", ("site1/#", 2), ("q1/#", 2))
    local = _client(node.port, f"{cid}-l", ("cmd/#", 2), ("q1/#", 2))

    for qos in (0, 1, 2):
        local.publish(f"edge/sensors/q{qos}", f"out{qos}", qos)
        remote.publish(f"central/cmd/q{qos}", f"in{qos}", qos)
    local.publish("other/x", b"not bridged", 1)
    remote.publish("central/other/x", b"not bridged", 1)

    assert _received(remote, 3) == [(f"site1/sensors/q{q}", f"out{q}".encode(), q) for q in range(3)]
    assert _received(local, 3) == [(f"cmd/q{q}", f"in{q}".encode(), q) for q in range(3)]
    # a topic's QoS caps what crosses: QoS 2 published, QoS 1 bridged
    local.publish("q1/a", b"two", 2)
    remote.publish("q1/b", b"two", 2)
    assert sorted(_received(local, 2)) == [("q1/a", b"two", 2), ("q1/b", b"two", 1)]
    assert sorted(_received(remote, 2)) == [("q1/a", b"two", 1), ("q1/b", b"two", 2)]
    local.expect_none()
    remote.expect_none()

    row = bridge_row(node)
    assert (row["endpoint"], row["messages out"], row["messages in"], row["buffer size"]) == \
        (f"127.0.0.1:{m.port}", "4", "4", "0")
    ok, out = node.admin("metrics", "show")
    for line in ("counter.br0_vmq_bridge_publish_out_0 = 1", "counter.br0_vmq_bridge_publish_out_1 = 2",
                 "counter.br0_vmq_bridge_publish_in_1 = 2", "gauge.br0_vmq_bridge_connected = 1"):
        assert line in out.splitlines()


@pytest.mark.parametrize("version, try_private, echoes", [("5", "on", 0), ("4", "on", 0), ("4", "off", 1)])
def test_both_directions_to_a_vmqpy_node_and_loop_prevention(make_broker, cid, version, try_private, echoes):
    """v5: the remote subscription is no-local; v3 with try_private: the remote treats the bridge as
    one (no-local). Without either the remote sends a local message back once, and the local no-local
    subscription stops it there; a remote message never comes back (the local side is no-local)."""
    remote = make_broker()
    node = make_broker(bridge_conf(remote.port, "shared/# both 1", mqtt_version=version, try_private=try_private))
    wait_connected(node)
    r = _client(remote.port, f"{cid}-r", ("shared/#", 1), version=V5)
    local = _client(node.port, f"{cid}-l", ("shared/#", 1), version=V5)

    local.publish("shared/a", b"from local", 1)
    assert [msg.payload for msg in r.expect(1)] == [b"from local"]
    assert [msg.payload for msg in local.expect(1 + echoes)] == [b"from local"] * (1 + echoes)
    r.publish("shared/b", b"from remote", 1)
    assert [msg.payload for msg in local.expect(1)] == [b"from remote"]
    assert [msg.payload for msg in r.expect(1)] == [b"from remote"]
    local.expect_none()
    r.expect_none()


def test_v5_properties_and_retain_cross_the_bridge(make_broker, cid):
    from clients import PUBLISH_PROPS, props

    remote = make_broker()
    node = make_broker(bridge_conf(remote.port, "p/# out 1 retain", mqtt_version="5"))
    wait_connected(node)
    local = _client(node.port, f"{cid}-l", version=V5)
    local.publish("p/r", b"kept", 1, retain=True,
                  properties=props(PUBLISH_PROPS, UserProperty=[("k", "v")], ContentType="text/plain"))
    wait_until(lambda: bridge_row(node)["messages out"] == "1", what="bridged")
    late = _client(remote.port, f"{cid}-late", version=V5)
    late.subscribe("p/#", 1)
    msg = late.expect(1)[0]
    assert (msg.topic, msg.payload, msg.retain) == ("p/r", b"kept", True)
    assert msg.properties.UserProperty == [("k", "v")] and msg.properties.ContentType == "text/plain"


def test_tls_bridge_with_a_test_ca_and_a_wrong_ca_refused(make_broker, mosquitto, tmp_path, cid):
    (tmp_path / "pki").mkdir()
    (tmp_path / "other").mkdir()
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other", ca_cn="another CA")
    m = mosquitto(pki)
    node = make_broker({**bridge_conf(m.tls_port, "tls/# out 1", name="good", kind="ssl", cafile=pki.ca,
                                      mqtt_version="4"),
                        **bridge_conf(m.tls_port, "tls/# out 1", name="bad", kind="ssl", cafile=other.ca,
                                      max_outgoing_buffered_messages="10")})
    wait_connected(node, "good")
    remote = _client(m.port, f"{cid}-r", ("tls/#", 1))
    local = _client(node.port, f"{cid}-l")
    local.publish("tls/x", b"secret", 1)
    assert [msg.payload for msg in remote.expect(1)] == [b"secret"]
    wait_until(lambda: "certificate verify failed" in node.log_text(), what="the refusal logged")
    bad = bridge_row(node, "bad")
    assert (bad["status"], bad["buffer size"]) == ("connecting", "1")
    remote.expect_none()


@pytest.mark.parametrize("lines, key, why", [
    ({"vmq_bridge.tcp.br0.topic.1": '"a/# sideways 1 x"'}, "vmq_bridge.tcp.br0.topic.1", "expected pattern"),
    ({"vmq_bridge.tcp.br0.topic.1": '"a/#/b in 1"'}, "vmq_bridge.tcp.br0.topic.1", "not a valid topic filter"),
    ({"vmq_bridge.tcp.br0.keepalive_interval": "10"}, "vmq_bridge.tcp.br0", "no vmq_bridge.tcp.br0.topic.N"),
    ({"vmq_bridge.tcp.br0": "nowhere", "vmq_bridge.tcp.br0.topic.1": "a"}, "vmq_bridge.tcp.br0", "expected IP:PORT"),
    ({"vmq_bridge.tcp.br0.topic.1": "a", "vmq_bridge.tcp.br0.mqtt_version": "6"}, "vmq_bridge.tcp.br0.mqtt_version",
     "expected one of 3, 4, 5"),
])
def test_bad_bridge_config_stops_the_node_with_file_line_key_and_why(make_broker, lines, key, why):
    node = make_broker({"plugins.vmq_bridge": "on", "vmq_bridge.tcp.br0": "127.0.0.1:1", **lines}, start=False)
    with pytest.raises(RuntimeError) as e:
        node.start()
    where = rf"vernemq\.conf:\d+: {re.escape(key)}: .*{re.escape(why)}"
    assert re.search(where, str(e.value)), str(e.value)
    check = subprocess.run([sys.executable, "-m", "vmqpy.scripts.vernemq", "--config", str(node.conf_path),
                            "chkconfig"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and re.search(where, check.stderr), check.stderr


def test_bridge_show_without_the_plugin(broker):
    ok, out = broker.admin("bridge", "show")
    assert not ok and "vmq_bridge plugin is not enabled" in out


def test_username_and_password_on_the_remote_and_a_wrong_password_refused(make_broker, cid):
    remote = make_broker({"allow_anonymous": "off"}, start=False)
    vmq_passwd(remote.root / "vmq.passwd", "edge", "s3cret")
    remote.start()
    node = make_broker({**bridge_conf(remote.port, "up/# out 1", name="good", username="edge", password="s3cret",
                                      client_id="edge-good", mqtt_version="4"),
                        **bridge_conf(remote.port, "up/# out 1", name="bad", username="edge", password="wrong",
                                      client_id="edge-bad", mqtt_version="4")})
    wait_connected(node, "good")
    r = Paho(remote.port, f"{cid}-r", username="edge", password="s3cret")
    r.connect()
    r.subscribe("up/#", 1)
    _client(node.port, f"{cid}-l").publish("up/x", b"authenticated", 1)
    assert [msg.payload for msg in r.expect(1)] == [b"authenticated"]
    wait_until(lambda: "CONNACK 0x04 (bad user name or password)" in node.log_text(), what="the refusal logged")
    assert bridge_row(node, "bad")["status"] == "connecting"
    r.expect_none()
