"""What a node runs for its operators besides the admin socket: HTTP listeners, $SYS, Graphite.

They read the node through a view: `LocalView`, the node's own figures and
commands, or with nr_of_workers > 1 (where only worker 0 runs them)
`cluster.ops.WorkersView`, the sums over every worker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from vmqpy.admin.commands import Result, execute, node_status
from vmqpy.admin.http import HttpListeners, OpsView, health_concerns
from vmqpy.broker.systree import Systree
from vmqpy.graphite import Graphite

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.metrics import HasSamples


class LocalView:
    """A single-process node as the operators see it."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def metrics(self, labelled: bool = False) -> HasSamples:
        return self.node.metrics  # its samples(labelled) gives either

    def status(self) -> dict[str, Any]:
        return node_status(self.node)

    def health(self) -> list[str]:
        return health_concerns(self.node)

    def execute(self, argv: list[str]) -> Result:
        return execute(self.node, argv)


def ops_view(node: Node) -> OpsView:
    if node.cluster is None:
        return LocalView(node)
    from vmqpy.cluster.ops import WorkersView

    return WorkersView(node.cluster)


class Operations:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.view = ops_view(node)
        self.http = HttpListeners(node, self.view)
        self.reporters = [Systree(node, self.view.metrics), Graphite(node, self.view.metrics)]

    def start(self) -> None:
        """Start the HTTP listeners (ListenerError if one cannot listen) and the reporters."""
        started = self.node.started_at
        self.node.metrics.gauge("system_wallclock", lambda: int((time.time() - started) * 1000))
        self.http.start_all()
        for reporter in self.reporters:
            reporter.start()

    def stop(self) -> None:
        for reporter in self.reporters:
            reporter.stop()
        self.http.stop_all()
