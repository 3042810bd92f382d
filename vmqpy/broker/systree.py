"""The $SYS tree: every systree_interval ms, each metric as `$SYS/<nodename>/<metric path>`.

As VerneMQ's vmq_systree: the metric name split on `_` is the topic path
(mqtt_publish_received -> $SYS/VerneMQ@127.0.0.1/mqtt/publish/received), the
payload is the value as text, published with systree_qos and systree_retain
into systree_mountpoint (QoS 0, not retained, no mountpoint by default)
through the normal routing path without auth hooks. Filters starting with a wildcard do
not match `$` topics, so only explicit `$SYS/...` subscriptions get them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vmqpy.broker.message import Msg
from vmqpy.metrics import HasSamples, PeriodicReporter, fmt_value, topic_words

if TYPE_CHECKING:
    from vmqpy.broker.node import Node


class Systree(PeriodicReporter):
    """`metrics` gives the figures to publish: the node's own, or the sum over its workers
    (then only worker 0 runs a Systree: one set of node totals per interval)."""

    def __init__(self, node: Node, metrics: Callable[[], HasSamples]) -> None:
        super().__init__()
        self.node = node
        self.metrics = metrics

    def interval(self) -> float | None:
        cfg = self.node.config
        ms = cfg["systree_interval"]
        return ms / 1000 if cfg["systree_enabled"] and ms > 0 else None

    def report(self) -> None:
        node = self.node
        cfg = node.config
        prefix = f"$SYS/{node.name}/"
        qos, retain, mountpoint = cfg["systree_qos"], cfg["systree_retain"], cfg["systree_mountpoint"]
        for s in self.metrics().samples():
            node.publish(Msg(prefix + "/".join(topic_words(s.name)), fmt_value(s.value).encode(), qos, retain,
                             None, mountpoint))
