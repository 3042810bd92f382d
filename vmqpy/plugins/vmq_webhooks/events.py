"""Event webhooks off the hot path: bounded queues served by greenlets.

A publishing session only appends to a queue; full queues drop (the drop is
counted and logged at most once per interval). Events are sharded by client
id, so one client's events reach an endpoint in the order they happened while
different clients' events are posted in parallel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import Full, Queue

log = logging.getLogger(__name__)

SHARDS = 8
QUEUE_SIZE = 10_000  # events waiting, over all shards


class ThrottledLog:
    """Log a repeating warning at most once per `interval` s, with how often it happened."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: Any) -> None:
        self._count[key] = self._count.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) >= self._interval:
            log.warning(msg + " (%d times since last report)", *args, self._count.pop(key))
            self._last[key] = now


class EventQueue:
    def __init__(self, send: Callable[[str, tuple], None], throttled: ThrottledLog) -> None:
        self._send = send
        self._throttled = throttled
        self._queues = [Queue(max(1, QUEUE_SIZE // SHARDS)) for _ in range(SHARDS)]
        self._workers = [gevent.spawn(self._serve, q) for q in self._queues]
        self.dropped = 0

    def put(self, shard_key: Any, hook: str, args: tuple) -> None:
        try:
            self._queues[hash(shard_key) % SHARDS].put_nowait((hook, args))
        except Full:
            self.dropped += 1
            self._throttled.warning("queue_full", "webhooks event queue full, dropped %s", hook)

    def stop(self) -> None:
        gevent.killall(self._workers)

    def _serve(self, queue: Queue) -> None:
        for hook, args in queue:
            try:
                self._send(hook, args)
            except Exception:
                log.exception("webhook %s failed", hook)
