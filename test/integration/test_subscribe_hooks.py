"""Subscribe/unsubscribe hooks that rewrite filters, and on_topic_unsubscribed."""

from __future__ import annotations

from broker import REPO, wait_until
from clients import Paho

PLUGIN_DIR = str(REPO / "test" / "plugins")


def _alias_node(make_broker, events):
    """A node with test/plugins/alias_subs, which writes the hook events it sees to `events`."""
    return make_broker({"plugins.vmq_acl": "off", "plugins.alias_subs": "on",
                        "plugins.alias_subs.path": PLUGIN_DIR, "alias_subs.events": str(events)})


def test_subscribe_and_unsubscribe_filters_rewritten_by_plugin(make_broker, tmp_path, cid):
    events = tmp_path / "events"
    node = _alias_node(make_broker, events)
    sub = Paho(node.port, cid)
    sub.connect()
    assert sub.subscribe("alias/t", 1)
    pub = Paho(node.port, cid + "p")
    pub.connect()
    pub.publish("alias/t", "to the alias topic", 1)
    pub.publish("real/t", "to the real topic", 1)
    assert [m.payload for m in sub.expect(1)] == [b"to the real topic"]
    sub.unsubscribe("alias/t")  # rewritten to real/t, so the subscription goes
    assert wait_until(lambda: events.exists() and events.read_text(), what="on_topic_unsubscribed") == \
        f"{cid} real/t\n"
    pub.publish("real/t", "after unsubscribe", 1)
    sub.expect_none()


def test_session_end_reports_all_topics_unsubscribed(make_broker, tmp_path, cid):
    events = tmp_path / "events"
    node = _alias_node(make_broker, events)
    sub = Paho(node.port, cid)
    sub.connect()
    sub.subscribe([("a/1", 0), ("a/2", 1)])
    sub.disconnect()
    assert wait_until(lambda: events.exists() and events.read_text(), what="on_topic_unsubscribed") == \
        f"{cid} all_topics\n"


def test_delivery_complete_fires_on_the_subscribers_ack(make_broker, tmp_path, cid):
    events = tmp_path / "events"
    node = _alias_node(make_broker, events)
    sub = Paho(node.port, cid)
    sub.connect()
    sub.subscribe("real/done", 2)
    pub = Paho(node.port, cid + "p")
    pub.connect()
    pub.publish("real/done", "one", 1)
    pub.publish("real/done", "two", 2)
    assert [m.payload for m in sub.expect(2)] == [b"one", b"two"]
    delivered = tmp_path / "events.delivered"
    wait_until(lambda: delivered.exists() and delivered.read_text().count("\n") == 2, what="completions")
    assert delivered.read_text() == f"{cid} 1 real/done one\n{cid} 2 real/done two\n"
    _, out = node.admin("metrics", "show")
    assert "counter.mqtt_publish_sent = 2" in out


def test_on_config_change_fires_on_vmq_admin_set(make_broker, tmp_path):
    events = tmp_path / "events"
    node = _alias_node(make_broker, events)
    assert node.admin("set", "max_inflight_messages=7", "allow_anonymous=off") == (True, "")
    changes = tmp_path / "events.config"
    assert wait_until(lambda: changes.exists() and changes.read_text(), what="on_config_change") == \
        "allow_anonymous=False max_inflight_messages=7\n"  # one call, the typed values
    assert node.admin("set", "max_inflight_messages=many")[0] is False
    assert changes.read_text().count("\n") == 1  # a refused value changes nothing, reports nothing
