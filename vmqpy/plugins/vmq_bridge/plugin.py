"""The bridges of a node, their metrics, and what `vmq-admin bridge show` lists."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vmqpy import metrics
from vmqpy.plugins.vmq_bridge.bridge import Bridge, counter_names, metric
from vmqpy.plugins.vmq_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)

DROPPED = "vmq_bridge_dropped_msgs"
SHOW_COLUMNS = ["name", "endpoint", "buffer size", "buffer max", "buffer dropped msgs",
                "MQTT process mailbox len", "status", "reconnects", "messages in", "messages out"]


class BridgePlugin:
    """Runs the bridges in one process of the node: with worker processes, in worker 0 only (one
    connection per bridge to the remote broker; the other workers forward what it subscribed to)."""

    def __init__(self, node: Any, settings: list[BridgeSettings]) -> None:
        self.node = node
        runs_here = node.cluster is None or node.cluster.runs_operations
        self.bridges = [Bridge(node, s) for s in settings] if runs_here else []

    def start(self) -> None:
        m = self.node.metrics
        if self.bridges:
            metrics.describe(DROPPED, "The number of dropped messages (queue full)")
            m.counters.setdefault(DROPPED, 0)
        for bridge in self.bridges:
            for name, text in counter_names(bridge.name).items():
                metrics.describe(name, text)
                m.counters.setdefault(name, 0)
            for suffix, (read, text) in _gauges(bridge).items():
                name = metric(bridge.name, suffix)
                metrics.describe(name, text, gauge=True)
                m.gauge(name, read)
            bridge.start()
            log.info("bridge %s to %s:%s started (%d buffered)", bridge.name, bridge.settings.host,
                     bridge.settings.port, len(bridge.buffer))

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.stop()
            for suffix in _gauges(bridge):
                self.node.metrics.gauges.pop(metric(bridge.name, suffix), None)

    def show(self) -> list[dict[str, Any]]:
        return [bridge.info() for bridge in self.bridges]


def _gauges(bridge: Bridge) -> dict[str, tuple[Callable[[], float], str]]:
    """vmqpy's gauges of one bridge: suffix -> (read, description)."""
    return {"buffered": (lambda: len(bridge.buffer), "Messages in the bridge's outgoing buffer."),
            "connected": (lambda: int(bridge.connected), "1 while the bridge is connected to the remote broker."),
            "reconnects": (lambda: bridge.reconnects, "Times the bridge connected again after losing the remote.")}
