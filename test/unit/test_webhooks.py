"""vmq_webhooks against a real HTTP endpoint (test/webhooks/endpoint_app.py under gunicorn).

Hook functions are called through a real Hooks registry, as the broker calls them.
"""

from __future__ import annotations

import base64
import socket
import time
from types import SimpleNamespace

import gevent
import pytest
from webhooks.endpoint import received, reset, rules, serve

from vmqpy.plugins.hooks import Hooks
from vmqpy.plugins.vmq_webhooks import events, start

SID = ("", "client-1")
PEER = ("127.0.0.1", 51234)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of a gunicorn-served endpoint app on an ephemeral port."""
    with serve(tmp_path_factory.mktemp("gunicorn")) as url:
        yield url


@pytest.fixture
def hooks(server):
    reset(server)
    return Hooks()


@pytest.fixture
def plugin(hooks):
    plugins = []

    def make(**settings):
        p = start(settings, SimpleNamespace(hooks=hooks))
        plugins.append(p)
        return p

    yield make
    for p in plugins:
        p.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_auth_on_register_body_header_and_ok(server, hooks, plugin):
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server + "/auth"})
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "user", b"secret", True) == ("ok", {})
    [req] = received(server)
    assert req["hook"] == "auth_on_register" and req["path"] == "/auth"
    assert req["content_type"] == "application/json"
    assert req["body"] == {"peer_addr": "127.0.0.1", "peer_port": 51234, "mountpoint": "",
                           "client_id": "client-1", "username": "user", "password": "secret",
                           "clean_session": True}
    assert list(req["body"]) == ["peer_addr", "peer_port", "mountpoint", "client_id", "username",
                                 "password", "clean_session"]


def test_undefined_credentials_are_null(server, hooks, plugin):
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server})
    hooks.all_till_ok("auth_on_register", PEER, SID, None, None, False)
    body = received(server)[0]["body"]
    assert body["username"] is None and body["password"] is None


def test_error_next_and_endpoint_order(server, hooks, plugin):
    rules(server, {"path": "/a", "body": {"result": "next"}},
          {"path": "/b", "match": {"client_id": "bad"}, "body": {"result": {"error": "not_allowed"}}})
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server + "/a",
              "w2.hook": "auth_on_register", "w2.endpoint": server + "/b"})
    answer = hooks.all_till_ok("auth_on_register", PEER, ("", "bad"), "u", b"p", True)
    assert answer == ("error", "not_allowed")
    assert hooks.all_till_ok("auth_on_register", PEER, ("", "good"), "u", b"p", True) == ("ok", {})
    assert [r["path"] for r in received(server)] == ["/a", "/b", "/a", "/b"]


def test_everyone_says_next(server, hooks, plugin):
    rules(server, {"body": {"result": "next"}})
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server})
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("next", None)


def test_register_modifiers(server, hooks, plugin):
    mods = {"mountpoint": "mynewmount", "client_id": "changed", "max_inflight_messages": 5}
    rules(server, {"body": {"result": "ok", "modifiers": mods}})
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server})
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("ok", mods)


def test_auth_on_publish_base64_and_rewrite(server, hooks, plugin):
    rules(server, {"body": {"result": "ok", "modifiers": {
        "topic": "rewritten/topic", "payload": base64.b64encode(b"\x00new").decode(), "qos": 0,
        "retain": True}}})
    plugin(**{"w1.hook": "auth_on_publish", "w1.endpoint": server})
    answer = hooks.all_till_ok("auth_on_publish", "user", ("mp", "c"), 1, "a/b", b"\xffhello", False)
    assert answer == ("ok", {"topic": "rewritten/topic", "payload": b"\x00new", "qos": 0, "retain": True})
    assert received(server)[0]["body"] == {
        "username": "user", "mountpoint": "mp", "client_id": "c", "qos": 1, "topic": "a/b",
        "payload": base64.b64encode(b"\xffhello").decode(), "retain": False}


def test_publish_no_payload_and_plain_payload(server, hooks, plugin):
    rules(server, {"path": "/plain", "body": {"result": "ok", "modifiers": {"payload": "plain new"}}})
    plugin(**{"w1.hook": "auth_on_publish", "w1.endpoint": server + "/none", "w1.no_payload": "on",
              "w2.hook": "on_publish", "w2.endpoint": server + "/plain", "w2.base64encode": "off",
              "w2.no_payload": True,  # only auth_on_publish(_m5) honour no_payload
              "w3.hook": "auth_on_publish_m5", "w3.endpoint": server + "/plain", "w3.base64encode": False})
    assert hooks.all_till_ok("auth_on_publish", "u", SID, 0, "t", b"data", False) == ("ok", {})
    hooks.all("on_publish", "u", SID, 0, "t", b"data", False)
    assert hooks.all_till_ok("auth_on_publish_m5", "u", SID, 0, "t", b"text", False, None) == \
        ("ok", {"payload": b"plain new"})
    by_hook = {r["hook"]: r["body"] for r in received(server, 3)}
    assert "payload" not in by_hook["auth_on_publish"]
    assert by_hook["on_publish"]["payload"] == "data"
    assert by_hook["auth_on_publish_m5"]["payload"] == "text"
    assert by_hook["auth_on_publish_m5"]["properties"] == {}


def test_auth_on_subscribe_topics(server, hooks, plugin):
    rules(server, {"body": {"result": "ok", "topics": [{"topic": "rewritten/topic", "qos": 2},
                                                       {"topic": "forbidden/topic", "qos": 128}]}})
    plugin(**{"w1.hook": "auth_on_subscribe", "w1.endpoint": server})
    answer = hooks.all_till_ok("auth_on_subscribe", "u", SID, [("a/#", 1), ("b", 0)])
    assert answer == ("ok", {"topics": [("rewritten/topic", 2), ("forbidden/topic", 128)]})
    assert received(server)[0]["body"]["topics"] == [{"topic": "a/#", "qos": 1}, {"topic": "b", "qos": 0}]


def test_auth_on_subscribe_m5_topics_and_properties(server, hooks, plugin):
    rules(server, {"body": {"result": "ok", "modifiers": {"topics": [
        {"topic": "x", "qos": 2, "no_local": True, "rap": False, "retain_handling": "dont_send"},
        {"topic": "y", "qos": 135}]}}})
    plugin(**{"w1.hook": "auth_on_subscribe_m5", "w1.endpoint": server})
    props = {"user_property": [("k1", "v1")], "subscription_identifier": [1, 2, 3]}
    answer = hooks.all_till_ok("auth_on_subscribe_m5", "u", SID, [("a", 1)], props)
    assert answer == ("ok", {"topics": [("x", 2), ("y", 135)]})
    body = received(server)[0]["body"]
    assert body["topics"] == [{"topic": "a", "qos": 1}]
    assert body["properties"] == {"p_user_property": [{"key": "azE=", "val": "djE="}],
                                  "p_subscription_id": [1, 2, 3]}


def test_m5_properties_both_ways(server, hooks, plugin):
    rules(server, {"body": {"result": "ok", "modifiers": {"properties": {
        "p_user_property": [{"key": "azM=", "val": "djM="}], "p_correlation_data": "cd2",
        "p_payload_format_indicator": "unspecified", "p_content_type": "text/x"}}}})
    plugin(**{"w1.hook": "auth_on_publish_m5", "w1.endpoint": server})
    props = {"user_property": [("k1", "v1")], "correlation_data": b"cd", "response_topic": "r/t",
             "payload_format_indicator": 1, "message_expiry_interval": 10}
    answer = hooks.all_till_ok("auth_on_publish_m5", "u", SID, 1, "t", b"p", False, props)
    assert answer == ("ok", {"properties": {"user_property": [("k3", "v3")], "correlation_data": b"cd2",
                                            "payload_format_indicator": 0, "content_type": "text/x"}})
    assert received(server)[0]["body"]["properties"] == {
        "p_user_property": [{"key": "azE=", "val": "djE="}], "p_correlation_data": "cd",
        "p_response_topic": "r/t", "p_payload_format_indicator": "utf8", "p_message_expiry_interval": 10}


def test_on_auth_m5(server, hooks, plugin):
    rules(server, {"body": {"result": "ok", "modifiers": {"reason_code": 0, "properties": {
        "p_authentication_method": "M", "p_authentication_data": base64.b64encode(b"AUTH_DATA1").decode()}}}})
    plugin(**{"w1.hook": "on_auth_m5", "w1.endpoint": server})
    props = {"authentication_method": "M", "authentication_data": b"AUTH_DATA0"}
    assert hooks.all_till_ok("on_auth_m5", "u", SID, props) == ("ok", {"reason_code": 0, "properties": {
        "authentication_method": "M", "authentication_data": b"AUTH_DATA1"}})
    assert received(server)[0]["body"] == {"username": "u", "mountpoint": "", "client_id": "client-1",
                                           "properties": {"p_authentication_method": "M",
                                                          "p_authentication_data": "QVVUSF9EQVRBMA=="}}


@pytest.mark.parametrize("rule", [{"status": 500}, {"raw": "not json"}, {"body": {"result": "maybe"}},
                                  {"body": [1, 2]}])
def test_bad_answers_fail_closed(server, hooks, plugin, rule):
    rules(server, rule)
    plugin(**{"w1.hook": "auth_on_subscribe", "w1.endpoint": server})
    kind, _ = hooks.all_till_ok("auth_on_subscribe", "u", SID, [("a", 0)])
    assert kind == "error"


def test_timeout_fails_closed(server, hooks, plugin):
    rules(server, {"delay": 2})
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server, "w1.response_timeout": 200})
    t0 = time.monotonic()
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("error", "timeout")
    assert time.monotonic() - t0 < 1


def test_endpoint_down(hooks, plugin):
    url = f"http://127.0.0.1:{closed_port()}/"
    p = plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": url,
                  "w2.hook": "on_publish", "w2.endpoint": url})
    t0 = time.monotonic()
    kind, reason = hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True)
    assert kind == "error" and "refused" in reason.lower()
    for _ in range(50):
        hooks.all("on_publish", "u", SID, 0, "t", b"x", False)  # never raises
    gevent.sleep(0.2)
    assert time.monotonic() - t0 < 2
    assert p.events.dropped == 0  # refused fast: every event was tried and dropped by the worker


def test_cache_max_age(server, hooks, plugin):
    rules(server, {"path": "/cache", "headers": {"Cache-Control": "max-age=60"}},
          {"path": "/cache1s", "headers": {"Cache-Control": "max-age=1"}})
    p = plugin(**{"w1.hook": "auth_on_publish", "w1.endpoint": server + "/cache",
                  "w2.hook": "auth_on_register", "w2.endpoint": server + "/cache1s",
                  "w3.hook": "auth_on_subscribe", "w3.endpoint": server + "/nocache"})
    for payload in (b"one", b"two", b"three"):  # the payload is not part of the key
        assert hooks.all_till_ok("auth_on_publish", "u", SID, 0, "t", payload, False) == ("ok", {})
    hooks.all_till_ok("auth_on_publish", "u", SID, 0, "other/topic", b"", False)
    for port in (1, 2):  # nor is the peer port
        hooks.all_till_ok("auth_on_register", ("127.0.0.1", port), SID, "u", b"p", True)
    for _ in range(2):
        hooks.all_till_ok("auth_on_subscribe", "u", SID, [("a", 0)])
    assert [r["path"] for r in received(server)].count("/cache") == 2
    assert [r["path"] for r in received(server)].count("/cache1s") == 1
    assert [r["path"] for r in received(server)].count("/nocache") == 2
    stats = {(s["stat"], s["hook"]): s["value"] for s in p.cache_stats()}
    assert stats[("hits", "auth_on_publish")] == 2 and stats[("misses", "auth_on_publish")] == 2
    assert stats[("entries", "auth_on_publish")] == 2
    time.sleep(1.1)
    hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True)
    assert [r["path"] for r in received(server)].count("/cache1s") == 2
    p.cache_clear()
    assert p.cache_stats() == []


def test_cache_never_replays_payload_or_errors(server, hooks, plugin):
    rules(server, {"match": {"client_id": "bad"}, "body": {"result": {"error": "no"}},
                   "headers": {"Cache-Control": "max-age=60"}},
          {"body": {"result": "ok", "modifiers": {"payload": "bmV3", "qos": 0}},
           "headers": {"Cache-Control": "max-age=60"}})
    plugin(**{"w1.hook": "auth_on_publish", "w1.endpoint": server})
    first = hooks.all_till_ok("auth_on_publish", "u", SID, 1, "t", b"x", False)
    second = hooks.all_till_ok("auth_on_publish", "u", SID, 1, "t", b"x", False)
    assert first == ("ok", {"payload": b"new", "qos": 0}) and second == ("ok", {"qos": 0})
    for _ in range(2):
        assert hooks.all_till_ok("auth_on_publish", "u", ("", "bad"), 1, "t", b"x", False) == ("error", "no")
    assert len(received(server)) == 3


def test_events_are_async_and_exact(server, hooks, plugin):
    rules(server, {"hook": "on_publish", "delay": 0.5})
    plugin(**{"w1.hook": "on_publish", "w1.endpoint": server, "w2.hook": "on_client_offline",
              "w2.endpoint": server, "w3.hook": "on_subscribe", "w3.endpoint": server})
    t0 = time.monotonic()
    hooks.all("on_publish", "u", SID, 1, "a/b", b"hi", True)
    hooks.all("on_client_offline", ("mp", "c2"))
    hooks.all("on_subscribe", "u", SID, [("a", 1), ("b", 128)])
    assert time.monotonic() - t0 < 0.1  # nothing waited for the slow endpoint
    by_hook = {r["hook"]: r["body"] for r in received(server, 3)}
    assert by_hook["on_publish"] == {"username": "u", "mountpoint": "", "client_id": "client-1", "qos": 1,
                                     "topic": "a/b", "payload": "aGk=", "retain": True}
    assert by_hook["on_client_offline"] == {"mountpoint": "mp", "client_id": "c2"}
    assert by_hook["on_subscribe"]["topics"] == [{"topic": "a", "qos": 1}, {"topic": "b", "qos": 128}]


def test_on_deliver_and_on_unsubscribe_answer_synchronously(server, hooks, plugin):
    rules(server, {"hook": "on_deliver", "body": {"result": "ok", "modifiers": {
              "topic": "new/t", "payload": base64.b64encode(b"new").decode()}}},
          {"hook": "on_unsubscribe", "body": {"result": "ok", "topics": ["rewritten/topic", "x"]}},
          {"hook": "on_unsubscribe_m5", "body": {"result": "ok", "modifiers": {"topics": ["r"]}}})
    plugin(**{"w1.hook": "on_deliver", "w1.endpoint": server, "w2.hook": "on_unsubscribe",
              "w2.endpoint": server, "w3.hook": "on_unsubscribe_m5", "w3.endpoint": server})
    assert hooks.all_till_ok("on_deliver", "u", SID, 0, "a/b", b"hi", False) == \
        ("ok", {"topic": "new/t", "payload": b"new"})
    assert hooks.all_till_ok("on_unsubscribe", "u", SID, ["a", "b/#"]) == \
        ("ok", {"topics": ["rewritten/topic", "x"]})
    assert hooks.all_till_ok("on_unsubscribe_m5", "u", SID, ["a"], {}) == ("ok", {"topics": ["r"]})
    bodies = [r["body"] for r in received(server)]
    assert bodies[0] == {"username": "u", "mountpoint": "", "client_id": "client-1", "qos": 0, "topic": "a/b",
                         "payload": "aGk=", "retain": False, "properties": {}}
    assert bodies[1]["topics"] == ["a", "b/#"]


def test_full_event_queue_drops(server, hooks, plugin, monkeypatch):
    monkeypatch.setattr(events, "QUEUE_SIZE", events.SHARDS)  # one slot per shard
    rules(server, {"delay": 1})
    p = plugin(**{"w1.hook": "on_client_wakeup", "w1.endpoint": server})
    t0 = time.monotonic()
    for _ in range(20):
        hooks.all("on_client_wakeup", SID)
    assert time.monotonic() - t0 < 0.1
    # One client id, so one shard: its single slot holds the first event (the worker
    # has not run yet, the caller never yielded) and the other 19 are dropped.
    assert p.events.dropped == 19


def test_keep_alive_pool(server, hooks, plugin):
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server})
    for _ in range(5):
        hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True)
    assert len({r["peer_port"] for r in received(server)}) == 1


def test_connection_closed_by_server_while_idle(server, hooks, plugin):
    plugin(**{"w1.hook": "auth_on_register", "w1.endpoint": server})  # pool_timeout 60 s > keep-alive 1 s
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("ok", {})
    time.sleep(1.5)
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("ok", {})
    assert len(received(server)) == 2


def test_runtime_register_deregister(server, hooks, plugin):
    p = plugin()
    assert not hooks.active("auth_on_register")
    p.register("auth_on_register", server + "/x", {"base64payload": "false", "response_timeout": "1000"})
    p.register("on_publish", server + "/x")
    assert hooks.owners("auth_on_register") == ["vmq_webhooks:auth_on_register"]
    assert p.show() == [
        {"hook": "auth_on_register", "endpoint": server + "/x", "base64payload": False,
         "no_payload": False, "response_timeout": 1000},
        {"hook": "on_publish", "endpoint": server + "/x", "base64payload": True, "no_payload": False,
         "response_timeout": 5000}]
    with pytest.raises(ValueError, match="already_registered"):
        p.register("auth_on_register", server + "/x")
    with pytest.raises(ValueError, match="invalid hook"):
        p.register("on_message_drop", server + "/x")
    assert hooks.all_till_ok("auth_on_register", PEER, SID, "u", b"p", True) == ("ok", {})
    p.deregister("auth_on_register", server + "/x")
    assert not hooks.active("auth_on_register") and hooks.active("on_publish")
    with pytest.raises(ValueError, match="not_found"):
        p.deregister("auth_on_register", server + "/x")
    assert len(received(server)) == 1


def test_start_validates_settings(hooks):
    ctx = SimpleNamespace(hooks=hooks)
    with pytest.raises(ValueError, match="vmq_webhooks.w1.endpoint is not defined"):
        start({"w1.hook": "auth_on_register"}, ctx)
    with pytest.raises(ValueError, match="invalid hook"):
        start({"w1.hook": "auth_on_nothing", "w1.endpoint": "http://x"}, ctx)
