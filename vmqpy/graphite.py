"""Push the node's metrics to Graphite's plaintext protocol over TCP.

When graphite_enabled, every graphite_interval ms one line per metric:
`[<api_key>.][<prefix>.]<metric path> <value> <unix time>`, the metric name
split on `_` into the path (as VerneMQ's vmq_graphite; put the node name in
graphite_prefix to tell nodes apart). The connection is kept; a failed
connect or send closes it and the next try waits graphite_reconnect_timeout
ms. All socket calls have timeouts and are gevent's, so the hub never blocks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gevent import socket

from vmqpy.metrics import HasSamples, PeriodicReporter, fmt_value, topic_words

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)


def graphite_lines(metrics: HasSamples, prefix: str, api_key: str, now: int,
                   labelled: HasSamples | None = None) -> bytes:
    """A line per metric; with `labelled` (graphite_include_labels) also one per labelled sample, its
    path ending in .<label>_<value> as VerneMQ's vmq_graphite writes it (mqtt.publish.received.mqtt_version_5)."""
    head = ".".join(p for p in (api_key, prefix) if p)

    def path(name: str) -> str:
        return ".".join([*([head] if head else []), *topic_words(name)])

    lines = [f"{path(s.name)} {fmt_value(s.value)} {now}\n" for s in metrics.samples()]
    if labelled is not None:
        lines += [f"{path(s.name)}.{'.'.join(f'{k}_{v}' for k, v in s.labels)} {fmt_value(s.value)} {now}\n"
                  for s in labelled.samples(labelled=True) if s.labels]
    return "".join(lines).encode()


class Graphite(PeriodicReporter):
    """`metrics` gives the figures to push: the node's own, or the sum over its workers."""

    def __init__(self, node: Node, metrics: Callable[..., HasSamples]) -> None:
        super().__init__()
        self.node = node
        self.metrics = metrics
        self.sock: socket.socket | None = None
        self.peer: tuple[str, int] | None = None
        self.retry_at = 0.0

    def interval(self) -> float | None:
        cfg = self.node.config
        ms = cfg["graphite_interval"]
        if cfg["graphite_enabled"] and ms > 0:
            return ms / 1000
        self._close()
        return None

    def report(self) -> None:
        if time.monotonic() < self.retry_at:
            return
        cfg = self.node.config
        peer = (cfg["graphite_host"], cfg["graphite_port"])
        timeout = cfg["graphite_connect_timeout"] / 1000 or None
        labelled = self.metrics(labelled=True) if cfg["graphite_include_labels"] else None
        data = graphite_lines(self.metrics(), cfg["graphite_prefix"], cfg["graphite_api_key"],
                              int(time.time()), labelled)
        try:
            if self.sock is None or self.peer != peer:
                self._close()
                self.sock = socket.create_connection(peer, timeout=timeout)
                self.peer = peer
            self.sock.sendall(data)
        except OSError as e:
            wait = cfg["graphite_reconnect_timeout"] / 1000
            log.warning("graphite %s:%s: %s; retrying in %.1fs", *peer, e, wait)
            self._close()
            self.retry_at = time.monotonic() + wait

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stop(self) -> None:
        super().stop()
        self._close()
