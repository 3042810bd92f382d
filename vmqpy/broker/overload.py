"""Load regulation: per-session publish rate limits and node overload protection.

A session over `max_message_rate` is slowed down by not reading its socket
for the rest of the second: TCP backpressure then throttles the publisher and
nothing is dropped. Node overload (`overload.*`) is sampled periodically, not
per message: while the node holds more queued messages or memory than allowed,
new CONNECTs are refused with Server busy and QoS 0 messages waiting for slow
consumers are shed, the cheapest loss MQTT allows.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5  # seconds between overload samples
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Throttle:
    """Counts one session's publishes per one-second window."""

    __slots__ = ("rate", "window_end", "count")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.window_end = 0.0
        self.count = 0

    def take(self) -> float:
        """Account one publish; the seconds to stop reading before the next one (0: go on)."""
        now = time.monotonic()
        if now >= self.window_end:
            self.window_end = now + 1.0
            self.count = 0
        self.count += 1
        return self.window_end - now if self.count >= self.rate else 0.0


def memory_used() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class OverloadMonitor:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.active = False
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            gevent.sleep(CHECK_INTERVAL)
            self.check()

    def check(self) -> None:
        cfg = self.node.config
        max_queued = cfg["overload.max_queued_messages"]
        max_memory = cfg["overload.max_memory"]
        queues = self.node.registry.queues.values()
        queued = sum(q.size() for q in queues) if max_queued else 0
        over_queued = bool(max_queued) and queued > max_queued
        over = over_queued or bool(max_memory and memory_used() > max_memory)
        if over != self.active:
            log.warning("node overload %s (queued messages %d)", "started" if over else "ended", queued)
            self.active = over
        if over:
            self._shed(queued - max_queued if over_queued else None)

    def _shed(self, excess: int | None) -> None:
        """Drop QoS 0 messages of the longest queues first; None: as many as there are."""
        for queue in sorted(self.node.registry.queues.values(), key=lambda q: -len(q.pending)):
            if excess is not None and excess <= 0 or not queue.pending:
                return
            dropped = queue.shed_qos0(excess)
            if excess is not None:
                excess -= dropped
