"""$SYS/<node>/<metric path>: published every systree_interval ms, not retained, not matched by #."""

from __future__ import annotations

from broker import wait_until
from clients import Paho

SYS = "$SYS/VerneMQ@127.0.0.1/"


def test_metrics_are_published_under_sys(make_broker, cid):
    node = make_broker({"systree_interval": "100"})
    wildcard = Paho(node.port, cid + "-all")
    wildcard.connect()
    wildcard.subscribe("#", 0)
    client = Paho(node.port, cid)
    client.connect()
    client.subscribe(SYS + "mqtt/publish/received", 0)
    client.subscribe(SYS + "retain/messages", 0)
    for _ in range(2):
        client.publish(f"{cid}/p", "x", 1)
    wildcard.expect(2)  # its own deliveries of the two publishes
    seen: dict[str, bytes] = {}

    def values() -> bool:
        while not client.messages.empty():
            m = client.messages.get()
            assert not m.retain and m.qos == 0
            seen[m.topic] = m.payload
        return seen.get(SYS + "mqtt/publish/received", b"0").isdigit() and \
            int(seen.get(SYS + "mqtt/publish/received", b"0")) >= 2 and SYS + "retain/messages" in seen

    wait_until(values, what="$SYS values")
    wildcard.expect_none()  # `#` does not match $SYS topics
    client.disconnect()
    wildcard.disconnect()


def test_interval_zero_disables_and_set_enables(make_broker, cid):
    node = make_broker({"systree_interval": "0"})
    client = Paho(node.port, cid)
    client.connect()
    client.subscribe(SYS + "#", 0)
    client.subscribe(f"{cid}/marker", 0)
    client.expect_none()
    assert node.admin("set", "systree_interval=100") == (True, "")
    assert client.expect(1)[0].topic.startswith(SYS)
    assert node.admin("set", "systree_enabled=off") == (True, "")
    client.publish(f"{cid}/marker", "after")  # delivered after any $SYS message already on its way
    wait_until(lambda: any(m.topic == f"{cid}/marker" for m in client.expect(1)), what="marker")
    client.expect_none(timeout=1.0)  # ten intervals without $SYS
    client.disconnect()
