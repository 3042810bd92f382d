"""vmq_webhooks end to end: a real node asks a real HTTP endpoint (gunicorn, started here).

Every hook is driven by a real MQTT session and must reach the endpoint with VerneMQ's JSON.
vmq_passwd and vmq_acl are off, so the endpoint alone decides auth.
"""

from __future__ import annotations

import base64

import pytest
from authkit import NOT_AUTHORIZED, SUB_REFUSED, V3, V5, connack, connected, publish, subscribe
from broker import Broker, wait_until
from clients import CONNECT_PROPS, V311, Paho, Raw, props
from clients import V5 as PAHO_V5
from webhooks.endpoint import control, rules, serve

from vmqpy.plugins.vmq_webhooks.codec import SIGNATURES

HOOKS = sorted(SIGNATURES)
def webhook_conf(url: str, hooks: list[str]) -> dict[str, str]:
    conf = {"allow_anonymous": "off", "plugins.vmq_passwd": "off", "plugins.vmq_acl": "off",
            "plugins.vmq_webhooks": "on"}
    for hook in hooks:
        conf[f"vmq_webhooks.w_{hook}.hook"] = hook
        conf[f"vmq_webhooks.w_{hook}.endpoint"] = f"{url}/{hook}"
    return conf


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("endpoint")) as url:
        yield url


@pytest.fixture(scope="module")
def node(tmp_path_factory, endpoint):
    node = Broker(tmp_path_factory.mktemp("webhooks"), webhook_conf(endpoint, HOOKS)).start()
    yield node
    node.stop()
    node.cleanup()


@pytest.fixture(autouse=True)
def no_rules(endpoint):
    rules(endpoint)  # every test starts with "ok" answers
    yield
    rules(endpoint)


def calls(url: str, hook: str, client_id: str, n: int = 1) -> list[dict]:
    """Bodies of the `hook` requests about `client_id`, once there are at least n."""
    def found():
        got = [r["body"] for r in control(url, "/_requests")
               if r["hook"] == hook and r["path"] == f"/{hook}" and r["body"].get("client_id") == client_id]
        return got if len(got) >= n else None
    return wait_until(found, 10, f"{n} {hook} call(s) for {client_id}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def without_port(body: dict) -> dict:
    assert isinstance(body.pop("peer_port"), int)
    return body


def test_v3_session_fires_every_hook_with_vernemqs_json(endpoint, node, cid):
    client = Paho(node.port, cid, V311, username="user", password="pw")
    client.connect()
    base = {"mountpoint": "", "client_id": cid}
    reg = {"peer_addr": "127.0.0.1", **base, "username": "user"}
    assert without_port(calls(endpoint, "auth_on_register", cid)[0]) == {**reg, "password": "pw",
                                                                          "clean_session": True}
    assert calls(endpoint, "on_client_wakeup", cid) == [base]
    assert without_port(calls(endpoint, "on_register", cid)[0]) == reg
    client.subscribe(f"wh/{cid}/#", 1)
    sub = {"username": "user", **base, "topics": [{"topic": f"wh/{cid}/#", "qos": 1}]}
    assert calls(endpoint, "auth_on_subscribe", cid) == [sub]
    assert calls(endpoint, "on_subscribe", cid) == [sub]
    client.publish(f"wh/{cid}/a", "hello", 1)
    assert client.expect(1)[0].payload == b"hello"
    pub = {"username": "user", **base, "qos": 1, "topic": f"wh/{cid}/a", "payload": b64("hello"),
           "retain": False}
    assert calls(endpoint, "auth_on_publish", cid) == [pub]
    assert calls(endpoint, "on_publish", cid) == [pub]
    client.unsubscribe(f"wh/{cid}/#")
    assert calls(endpoint, "on_unsubscribe", cid) == [{"username": "user", **base, "topics": [f"wh/{cid}/#"]}]
    client.disconnect()
    assert calls(endpoint, "on_client_gone", cid) == [base]


def test_persistent_v3_session_goes_offline_gets_offline_messages_and_wakes_up(endpoint, node, cid):
    sub = Paho(node.port, cid, V311, clean=False, username="u", password="p")
    sub.connect()
    sub.subscribe(f"off/{cid}", 1)
    sub.disconnect()
    base = {"mountpoint": "", "client_id": cid}
    assert calls(endpoint, "on_client_offline", cid) == [base]
    pub = connected(node.port, V3, cid + "p", "u", "p")
    assert publish(pub, f"off/{cid}", b"while away") == 0
    assert calls(endpoint, "on_offline_message", cid) == [{**base, "qos": 1, "topic": f"off/{cid}",
                                                           "payload": b64("while away"), "retain": False}]
    sub = Paho(node.port, cid, V311, clean=False, username="u", password="p")
    sub.connect()
    assert sub.expect(1)[0].payload == b"while away"
    assert calls(endpoint, "on_client_wakeup", cid, 2) == [base, base]
    sub.disconnect()


def test_v5_session_fires_the_m5_hooks_and_session_expiry(endpoint, node, cid):
    client = Paho(node.port, cid, PAHO_V5, username="user", password="pw")
    client.connect(props(CONNECT_PROPS, SessionExpiryInterval=1))
    base = {"mountpoint": "", "client_id": cid}
    reg = {"peer_addr": "127.0.0.1", **base, "username": "user"}
    expiry = {"p_session_expiry_interval": 1}
    assert without_port(calls(endpoint, "auth_on_register_m5", cid)[0]) == {
        **reg, "password": "pw", "clean_start": True, "properties": expiry}
    assert without_port(calls(endpoint, "on_register_m5", cid)[0]) == {**reg, "properties": expiry}
    client.subscribe(f"wh5/{cid}/#", 1)
    sub = {"username": "user", **base, "topics": [{"topic": f"wh5/{cid}/#", "qos": 1}], "properties": {}}
    assert calls(endpoint, "auth_on_subscribe_m5", cid) == [sub]
    assert calls(endpoint, "on_subscribe_m5", cid) == [sub]
    client.publish(f"wh5/{cid}/a", "hi", 1)
    assert client.expect(1)[0].payload == b"hi"
    pub = {"username": "user", **base, "qos": 1, "topic": f"wh5/{cid}/a", "payload": b64("hi"),
           "retain": False, "properties": {}}
    assert calls(endpoint, "auth_on_publish_m5", cid) == [pub]
    assert calls(endpoint, "on_publish_m5", cid) == [pub]
    client.unsubscribe(f"wh5/{cid}/#")
    assert calls(endpoint, "on_unsubscribe_m5", cid) == [
        {"username": "user", **base, "topics": [f"wh5/{cid}/#"], "properties": {}}]
    client.disconnect()
    assert calls(endpoint, "on_client_offline", cid) == [base]
    assert calls(endpoint, "on_session_expired", cid) == [base]  # 1 s after going offline


@pytest.mark.parametrize("version", [V311, PAHO_V5])
def test_on_deliver_json_and_modifiers(endpoint, node, cid, version):
    hook = "on_deliver_m5" if version == PAHO_V5 else "on_deliver"
    rules(endpoint, {"hook": hook, "match": {"topic": f"dl/{cid}/secret"},
                     "body": {"result": "ok", "modifiers": {"topic": f"dl/{cid}/redacted",
                                                            "payload": b64("***")}}})
    client = Paho(node.port, cid, version, username="u", password="p")
    client.connect()
    client.subscribe(f"dl/{cid}/#", 1)
    client.publish(f"dl/{cid}/plain", "x", 1)
    client.publish(f"dl/{cid}/secret", "pin 1234", 1)
    assert [(m.topic, m.payload) for m in client.expect(2)] == [(f"dl/{cid}/plain", b"x"),
                                                                 (f"dl/{cid}/redacted", b"***")]
    # VerneMQ sends on_deliver's properties too (empty for v3).
    assert calls(endpoint, hook, cid, 2) == [
        {"username": "u", "mountpoint": "", "client_id": cid, "qos": 1, "topic": f"dl/{cid}/{leaf}",
         "payload": b64(payload), "retain": False, "properties": {}}
        for leaf, payload in (("plain", "x"), ("secret", "pin 1234"))]
    client.disconnect()


def test_enhanced_auth_asks_on_auth_m5(endpoint, node, cid):
    rules(endpoint, {"hook": "on_auth_m5", "match": {"client_id": cid + "x"},
                     "body": {"result": {"error": "not_allowed"}}})
    auth = {"authentication_method": "token", "authentication_data": b"t0k3n"}
    raw = Raw(node.port, V5)
    ack = raw.connect(cid, username="u", properties=auth)
    assert ack.reason_code == 0 and ack.properties["authentication_method"] == "token"
    assert calls(endpoint, "on_auth_m5", cid) == [{
        "username": "u", "mountpoint": "", "client_id": cid,
        "properties": {"p_authentication_method": "token", "p_authentication_data": b64("t0k3n")}}]
    raw.close()
    refused = Raw(node.port, V5)
    assert refused.connect(cid + "x", username="u", properties=auth).reason_code == 0x87
    refused.close()


@pytest.mark.parametrize("version", [V3, V5])
def test_auth_on_register_error_or_next_refuses(endpoint, node, cid, version):
    rules(endpoint, {"match": {"client_id": cid + "e"}, "body": {"result": {"error": "not_allowed"}}},
          {"match": {"client_id": cid + "n"}, "body": {"result": "next"}})
    assert connack(node.port, version, cid + "e", "u", "p") == NOT_AUTHORIZED[version]
    assert connack(node.port, version, cid + "n", "u", "p") == NOT_AUTHORIZED[version]
    assert connack(node.port, version, cid + "k", "u", "p") == 0


@pytest.mark.parametrize("version", [V3, V5])
def test_auth_on_subscribe_error_and_per_filter_answers(endpoint, node, cid, version):
    hook = "auth_on_subscribe_m5" if version == V5 else "auth_on_subscribe"
    answer = [{"topic": "a", "qos": 1}, {"topic": "b", "qos": 128}]
    # VerneMQ's answer shape: top-level "topics" for v3, "modifiers": {"topics"} for v5.
    ok = {"result": "ok", "modifiers": {"topics": answer}} if version == V5 else {"result": "ok", "topics": answer}
    rules(endpoint, {"hook": hook, "match": {"topics": [{"topic": "no", "qos": 1}]},
                     "body": {"result": {"error": "not_allowed"}}},
          {"hook": hook, "match": {"topics": [{"topic": "a", "qos": 2}, {"topic": "b", "qos": 1}]}, "body": ok})
    raw = connected(node.port, version, cid, "u", "p")
    assert subscribe(raw, "no") == [SUB_REFUSED[version]]
    # qos 2 downgraded to 1; qos 128 refuses that filter (0x80, "unspecified error" in v5).
    assert subscribe(raw, ("a", 2), ("b", 1)) == [1, 0x80]


def test_auth_on_publish_error_denies_v5_and_drops_v3(endpoint, node, cid):
    rules(endpoint, {"hook": "auth_on_publish_m5", "match": {"topic": f"deny/{cid}"},
                     "body": {"result": {"error": "not_allowed"}}},
          {"hook": "auth_on_publish", "match": {"topic": f"deny/{cid}"},
           "body": {"result": {"error": "not_allowed"}}})
    watcher = Paho(node.port, cid + "w", username="u", password="p")
    watcher.connect()
    watcher.subscribe(f"deny/{cid}", 1)
    watcher.subscribe(f"allow/{cid}", 1)
    v5 = connected(node.port, V5, cid + "5", "u", "p")
    assert publish(v5, f"deny/{cid}", b"v5") == 0x87
    v3 = connected(node.port, V3, cid + "3", "u", "p")
    assert publish(v3, f"deny/{cid}", b"v3") == 0  # v3 has no code: acked and dropped
    assert publish(v3, f"allow/{cid}", b"after") == 0
    assert [m.payload for m in watcher.expect(1)] == [b"after"]
    watcher.disconnect()


def test_auth_on_publish_modifiers_rewrite_topic_and_payload(endpoint, node, cid):
    rules(endpoint, {"hook": "auth_on_publish", "match": {"topic": f"mod/{cid}/in"},
                     "body": {"result": "ok", "modifiers": {"topic": f"mod/{cid}/out",
                                                            "payload": b64("changed")}}})
    sub = Paho(node.port, cid + "s", username="u", password="p")
    sub.connect()
    sub.subscribe(f"mod/{cid}/#", 1)
    pub = connected(node.port, V3, cid + "p", "u", "p")
    assert publish(pub, f"mod/{cid}/in", b"original") == 0
    [msg] = sub.expect(1)
    assert (msg.topic, msg.payload) == (f"mod/{cid}/out", b"changed")
    sub.disconnect()


def test_auth_answers_with_max_age_are_cached(endpoint, node, cid):
    rules(endpoint, {"hook": "auth_on_register", "match": {"client_id": cid},
                     "headers": {"cache-control": "max-age=60"}})
    node.admin("webhooks", "cache", "show", "--reset")
    for _ in range(3):
        assert connack(node.port, V3, cid, "cached", "pw") == 0
    assert len(calls(endpoint, "auth_on_register", cid)) == 1
    assert connack(node.port, V3, cid, "cached", "other") == 0  # another body: asked again
    assert len(calls(endpoint, "auth_on_register", cid)) == 2
    ok, table = node.admin("webhooks", "cache", "show")
    assert ok
    hits = [line for line in table.splitlines() if "| hits " in line and "auth_on_register" in line]
    assert hits and hits[0].split("|")[4].strip() == "2"


def test_endpoint_down_fails_auth_closed_and_drops_events(make_broker, tmp_path, cid):
    """auth_on_register and on_publish go to an endpoint that dies; vmq_acl authorizes publishes."""
    with serve(tmp_path) as url:
        conf = webhook_conf(url, ["auth_on_register", "on_publish"])
        conf["plugins.vmq_acl"] = "on"  # the node's ACL file allows everything
        node = make_broker(conf)
        client = Paho(node.port, cid, username="u", password="p")
        client.connect()
        client.subscribe(f"down/{cid}", 1)
        client.publish(f"down/{cid}", "before", 1)
        assert client.expect(1)[0].payload == b"before"
        calls(url, "on_publish", cid)
    # The endpoint is gone now.
    assert connack(node.port, V3, cid + "new", "u", "p") == NOT_AUTHORIZED[V3]
    assert connack(node.port, V5, cid + "new", "u", "p") == NOT_AUTHORIZED[V5]
    for i in range(3):
        client.publish(f"down/{cid}", f"after{i}", 1)
    assert [m.payload for m in client.expect(3)] == [b"after0", b"after1", b"after2"]
    wait_until(lambda: "webhook on_publish" in node.log_text(), 10, "the failed event logged")
    assert "webhook auth_on_register" in node.log_text()
    client.disconnect()
