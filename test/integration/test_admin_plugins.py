"""Plugins managed at runtime through the admin socket (`vmq-admin plugin|webhooks ...`),
and a plugin loaded from a directory path."""

from __future__ import annotations

import subprocess

import pytest
from authkit import V3, V5, connected, publish
from broker import REPO, Broker
from clients import Paho
from webhooks.endpoint import rules, serve

PLUGIN_DIR = str(REPO / "test" / "plugins")
VMQ_ADMIN = str(REPO / "bin" / "vmq-admin")
# Everyone may read everything; only open/# may be written (so vmq_acl says next elsewhere).
ACL = "topic read #\ntopic write open/#\n"


def table_rows(table: str) -> list[list[str]]:
    """The cells of a render_table table, header row first."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|")]


def plugin_hooks(node: Broker) -> dict[str, list[str]]:
    """`plugin show` as {plugin: [hooks]} (a plugin's extra hooks are on lines of their own)."""
    ok, out = node.admin("plugin", "show")
    assert ok, out
    header, *rows = table_rows(out)
    assert header == ["Plugin", "Type", "Hook(s)", "Path"]
    shown: dict[str, list[str]] = {}
    current = ""
    for name, _kind, hook, _path in rows:
        current = name or current
        shown.setdefault(current, []).append(hook)
    return shown


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Broker(tmp_path_factory.mktemp("admin-plugins"), acl=ACL).start()
    yield node
    node.stop()
    node.cleanup()


def test_plugin_show_lists_the_builtins_and_their_hooks(node):
    shown = plugin_hooks(node)
    assert shown["vmq_passwd"] == ["auth_on_register", "auth_on_register_m5"]
    assert shown["vmq_acl"] == ["auth_on_publish", "auth_on_publish_m5", "auth_on_subscribe",
                                "auth_on_subscribe_m5"]
    ok, out = node.admin("plugin", "show", "--plugin=vmq_acl")
    assert ok and "vmq_acl" in out and "vmq_passwd" not in out
    assert table_rows(out)[1][:2] == ["vmq_acl", "built-in"]


def test_disable_and_enable_vmq_acl_at_runtime(node, cid):
    client = connected(node.port, V5, cid)
    assert publish(client, f"closed/{cid}") == 0x87
    assert node.admin("plugin", "disable", "--name=vmq_acl") == (True, "Done")
    try:
        assert "vmq_acl" not in plugin_hooks(node)
        # No authorization plugin left: allow_anonymous = on leaves publishing open.
        assert publish(client, f"closed/{cid}") == 0
        assert node.admin("plugin", "disable", "--name=vmq_acl") == (False, "plugin vmq_acl is not enabled")
    finally:
        assert node.admin("plugin", "enable", "--name=vmq_acl") == (True, "Done")
    assert publish(client, f"closed/{cid}") == 0x87
    assert node.admin("plugin", "enable", "--name=vmq_acl") == (False, "plugin vmq_acl is already enabled")


def test_enable_a_plugin_from_a_path_at_runtime(node, cid):
    sub = Paho(node.port, cid + "s")
    sub.connect()
    sub.subscribe(f"rewritten/{cid}/#", 1)
    sub.subscribe(f"{cid}/#", 1)
    pub = connected(node.port, V3, cid + "p")
    ok, out = node.admin("plugin", "enable", "--name=rewrite_topic", f"--path={PLUGIN_DIR}")
    assert ok, out
    try:
        ok, out = node.admin("plugin", "show", "--plugin=rewrite_topic")
        assert table_rows(out)[1] == ["rewrite_topic", "path", "auth_on_publish", PLUGIN_DIR]
        assert publish(pub, f"{cid}/a", b"one") == 0
        [msg] = sub.expect(1)
        assert (msg.topic, msg.payload) == (f"rewritten/{cid}/a", b"one")
    finally:
        assert node.admin("plugin", "disable", "--name=rewrite_topic") == (True, "Done")
    assert publish(pub, f"{cid}/b", b"two") == 0  # v3: acked, but nobody allows it now
    assert publish(pub, f"open/{cid}", b"three") == 0
    sub.subscribe(f"open/{cid}", 1)
    assert publish(pub, f"open/{cid}", b"four") == 0
    assert [m.payload for m in sub.expect(1)] == [b"four"]  # "two" was never routed
    sub.disconnect()


def test_enable_reports_errors(node):
    ok, out = node.admin("plugin", "enable", "--name=nosuch", f"--path={PLUGIN_DIR}")
    assert not ok and "plugin nosuch failed to start" in out
    ok, out = node.admin("plugin", "enable", "--name=broken_start", f"--path={PLUGIN_DIR}")
    assert not ok and "broken_start" in out
    assert "broken_start" not in plugin_hooks(node)
    assert node.admin("plugin", "enable") == (False, "Usage: vmq-admin plugin enable --name=NAME [--path=DIR]")
    ok, out = node.admin("plugin", "enable", "--help")
    assert ok and out.startswith("Usage: vmq-admin plugin enable\n\n  Start a plugin")


def test_a_plugin_loaded_from_a_path_at_start_rewrites_topics(make_broker, cid):
    node = make_broker({"plugins.rewrite_topic": "on", "plugins.rewrite_topic.path": PLUGIN_DIR,
                        "rewrite_topic.prefix": "moved"}, acl=ACL)
    assert list(plugin_hooks(node)) == ["vmq_passwd", "vmq_acl", "rewrite_topic"]  # start order
    sub = Paho(node.port, cid + "s")
    sub.connect()
    sub.subscribe("moved/#", 1)
    sub.subscribe("open/#", 1)
    pub = connected(node.port, V3, cid + "p")  # rewrite_topic answers auth_on_publish (v3) only
    assert publish(pub, "sensor/1", b"t=20") == 0
    assert publish(pub, "open/x", b"as is") == 0  # vmq_acl answers first: no rewrite
    assert [(m.topic, m.payload) for m in sub.expect(2)] == [("moved/sensor/1", b"t=20"), ("open/x", b"as is")]
    sub.disconnect()


def test_vmq_admin_script_plugin_show_and_help(node):
    out = subprocess.run([VMQ_ADMIN, "--config", str(node.conf_path), "plugin", "show"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert table_rows(out.stdout)[0] == ["Plugin", "Type", "Hook(s)", "Path"]
    assert "vmq_acl" in out.stdout
    for argv in (["plugin"], ["webhooks", "--help"]):
        out = subprocess.run([VMQ_ADMIN, "--config", str(node.conf_path), *argv], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith(f"Usage: vmq-admin {argv[0]} <sub-command>")


def test_webhooks_commands_need_the_plugin(node):
    ok, out = node.admin("webhooks", "show")
    assert not ok and "vmq_webhooks plugin is not enabled" in out


def test_webhooks_register_deregister_show_change_behaviour_live(make_broker, tmp_path, cid):
    with serve(tmp_path) as url:
        node = make_broker({"plugins.vmq_webhooks": "on", "plugins.vmq_acl": "off"})
        endpoint = url + "/pub"
        rules(url, {"hook": "auth_on_publish_m5", "match": {"topic": f"blocked/{cid}"},
                    "body": {"result": {"error": "not_allowed"}}})
        client = connected(node.port, V5, cid)
        assert publish(client, f"blocked/{cid}") == 0  # nobody asks: allow_anonymous = on
        assert node.admin("webhooks", "register", "hook=auth_on_publish_m5", f"endpoint={endpoint}",
                          "--response_timeout=2000", "--base64payload=false") == (True, "Done")
        ok, out = node.admin("webhooks", "show")
        assert table_rows(out) == [["hook", "endpoint", "base64payload", "no_payload", "response_timeout"],
                                   ["auth_on_publish_m5", endpoint, "false", "false", "2000"]]
        assert publish(client, f"blocked/{cid}") == 0x87
        assert publish(client, f"fine/{cid}") == 0
        ok, out = node.admin("webhooks", "register", "hook=auth_on_publish_m5", f"endpoint={endpoint}")
        assert (ok, out) == (False, "Error: already_registered")
        ok, out = node.admin("webhooks", "register", "hook=on_message_drop", f"endpoint={endpoint}")
        assert not ok and "invalid hook" in out
        assert node.admin("webhooks", "deregister", "hook=auth_on_publish_m5",
                          f"endpoint={endpoint}") == (True, "Done")
        assert table_rows(node.admin("webhooks", "show")[1])[1:] == []
        assert publish(client, f"blocked/{cid}") == 0
        assert node.admin("webhooks", "deregister", "hook=auth_on_publish_m5",
                          f"endpoint={endpoint}") == (False, "Error: not_found")
