"""What a node runs for its operators besides the admin socket: HTTP listeners, $SYS, Graphite."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from vmqpy.admin.http import HttpListeners
from vmqpy.broker.systree import Systree
from vmqpy.graphite import Graphite

if TYPE_CHECKING:
    from vmqpy.broker.node import Node


class Operations:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.http = HttpListeners(node)
        self.reporters = [Systree(node), Graphite(node)]

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
