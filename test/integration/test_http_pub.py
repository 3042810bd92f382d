"""vmq_http_pub: POST /restmqtt/api/v1/publish against a real node, with each auth mode
(API key on the endpoint; on-behalf-of and predefined MQTT credentials through vmq_passwd and vmq_acl)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from authkit import vmq_passwd
from broker import free_port
from clients import V5, Paho

PUB = "/restmqtt/api/v1/publish"
MODULES = "[vmq_http_pub, vmq_metrics_http, vmq_http_mgmt_api]"


def post(node, path: str = PUB, body: bytes | dict = b"", key: str | None = None,
         headers: dict | None = None, port: int | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port or node.http_port}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    if key is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start(make_broker, conf: dict | None = None, acl: str = "topic #\n", users: dict | None = None):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}", "listener.http.default.http_modules": MODULES,
                        "plugins.vmq_http_pub": "on", **(conf or {})}, acl=acl, start=False)
    for user, password in (users or {}).items():
        vmq_passwd(node.root / "vmq.passwd", user, password)
    node.http_port = port
    return node.start()


def counters(node) -> dict[str, int]:
    ok, out = node.admin("metrics", "show")
    lines = (line.split(" = ") for line in out.splitlines() if line.startswith("counter.http_pub_"))
    return {k.removeprefix("counter."): int(v) for k, v in lines}


def test_publish_with_an_api_key_json_headers_and_url_parameters(make_broker, cid):
    node = start(make_broker)
    ok, key = node.admin("api-key", "create", "scope=httppub")
    assert ok
    sub = Paho(node.port, cid, version=V5)
    sub.connect()
    sub.subscribe(f"{cid}/#", 2)

    assert post(node, body={"topic": f"{cid}/json", "payload": "hello"}) == (401, '{"error":"unauthorized"}')
    ok, mgmt = node.admin("api-key", "create", "scope=mgmt")
    assert post(node, body={"topic": f"{cid}/json", "payload": "hello"}, key=mgmt)[0] == 401  # wrong scope
    assert post(node, body={"topic": f"{cid}/json", "payload": "hello", "qos": 1, "retain": False,
                            "user_properties": [{"k": "v"}]}, key=key) == (200, "Published")
    [m] = sub.expect(1)
    assert (m.topic, m.payload, m.qos) == (f"{cid}/json", b"hello", 1)
    assert m.properties.UserProperty == [("k", "v")]

    encoded = base64.b64encode(b"\x00\x01binary").decode()
    assert post(node, PUB + "?encoding=base64", {"topic": f"{cid}/b64", "payload": encoded}, key) == \
        (200, "Published")
    assert sub.expect(1)[0].payload == b"\x00\x01binary"

    headers = {"topic": f"{cid}/hdr", "qos": "2", "retain": "true", "Content-Type": "application/octet-stream"}
    assert post(node, body=b"raw body", key=key, headers=headers) == (200, "Published")
    m = sub.expect(1)[0]
    assert (m.topic, m.payload, m.qos) == (f"{cid}/hdr", b"raw body", 2)
    assert node.rows("retain", "show", f"--topic={cid}/hdr", "--payload") == [{"payload": "raw body"}]

    assert post(node, PUB + f"?topic={cid}/url&qos=1", b"from url", key) == (200, "Published")
    assert sub.expect(1)[0].payload == b"from url"

    before = counters(node)
    assert post(node, body={"topic": f"{cid}/q", "payload": "x", "qos": 3}, key=key) == \
        (400, "Invalid QoS value. Must be in range 0..2")
    assert post(node, body={"topic": f"{cid}/+", "payload": "x"}, key=key) == (400, "Invalid topic")
    assert post(node, body={"topic": "$SYS/x", "payload": "x"}, key=key) == (400, "Invalid topic")
    assert post(node, body={"topic": f"{cid}/r", "payload": "x", "retain": "maybe"}, key=key) == \
        (400, "Invalid retain flag. Must be in true or false")
    assert post(node, body=b"not json", key=key) == (400, "Content is not a valid json")
    assert post(node, PUB + "?encoding=rot13", {"topic": f"{cid}/e", "payload": "x"}, key) == \
        (400, "Only encoding plain or base64 allows. No more URL parameters supported.")
    assert post(node, PUB + f"?topic={cid}/x", b"x", key, headers={"topic": f"{cid}/x"}) == \
        (400, "Parameters found in header as well as url-encoded")
    after = counters(node)
    assert after["http_pub_published"] == before["http_pub_published"]
    assert after["http_pub_api_error"] == before["http_pub_api_error"] + 7
    assert after["http_pub_published"] == 4
    sub.expect_none()
    sub.disconnect()


def test_on_behalf_of_checks_the_credentials_and_the_acl(make_broker, tmp_path, cid):
    node = start(make_broker, {"allow_anonymous": "off", "http_module.vmq_http_pub.auth.mode": "noauth"},
                 acl=f"user dev\ntopic write {cid}/dev/#\ntopic read {cid}/#\n", users={"dev": "secret"})
    sub = Paho(node.port, cid, username="dev", password="secret")
    sub.connect()
    sub.subscribe(f"{cid}/#", 1)
    ok = {"topic": f"{cid}/dev/t", "payload": "mine", "client_id": f"{cid}-http", "user": "dev",
          "password": "secret"}
    assert post(node, body=ok) == (200, "Published")
    assert sub.expect(1)[0].payload == b"mine"
    before = counters(node)["http_pub_auth_error"]
    assert post(node, body={**ok, "password": "wrong"}) == (401, "Authentication failure.")
    assert post(node, body={**ok, "topic": f"{cid}/other"}) == (403, "Authorization failure.")
    assert counters(node)["http_pub_auth_error"] == before + 2
    sub.expect_none()
    sub.disconnect()


def test_predefined_credentials_per_listener(make_broker, cid):
    other = free_port()
    node = start(make_broker, {
        "allow_anonymous": "off", "http_module.vmq_http_pub.auth.mode": "noauth",
        "listener.http.pre": f"127.0.0.1:{other}", "listener.http.pre.http_modules": "vmq_http_pub",
        "listener.http.pre.http_modules.vmq_http_pub.mqtt_auth.mode": "predefined",
        "listener.http.pre.http_modules.vmq_http_pub.mqtt_auth.user": "svc",
        "listener.http.pre.http_modules.vmq_http_pub.mqtt_auth.password": "svcpw",
        "listener.http.pre.http_modules.vmq_http_pub.mqtt_auth.client_id": "http-svc",
    }, users={"svc": "svcpw", "reader": "r"})
    sub = Paho(node.port, cid, username="reader", password="r")
    sub.connect()
    sub.subscribe(f"{cid}/#", 1)
    body = {"topic": f"{cid}/t", "payload": "by the service"}
    assert post(node, body=body, port=other) == (200, "Published")  # no credentials needed here
    assert sub.expect(1)[0].payload == b"by the service"
    assert post(node, body=body) == (401, "Authentication failure.")  # on-behalf-of on the default one
    sub.disconnect()


@pytest.mark.parametrize("mode,status", [("apikey", 401), ("noauth", 200)])
def test_http_module_auth_modes(make_broker, mode, status):
    node = start(make_broker, {"listener.http.default.http_module.vmq_metrics_http.auth.mode": mode,
                               "http_module.vmq_http_mgmt_api.auth.mode": "noauth"})
    req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}/metrics")
    try:
        code = urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        code = e.code
    assert code == status
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/api/v1/node/status", timeout=10) as reply:
        assert reply.status == 200  # the management API without a key: noauth
    if mode == "apikey":
        ok, key = node.admin("api-key", "create", "scope=metrics")
        req.add_header("x-api-key", key)
        assert urllib.request.urlopen(req, timeout=10).status == 200


def test_global_http_modules(make_broker):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}", "http_modules": "[vmq_health_http]"})
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert e.value.code == 404
    assert node.ping()
