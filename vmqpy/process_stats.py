"""This process's figures under the names VerneMQ gives the Erlang VM's (system_*, vm_memory_total).

What each is here: context switches and CPU time from getrusage, collections and collected objects
from Python's garbage collector, callbacks waiting in the gevent loop (the run queue), CPU
utilisation since the previous reading, and resident memory.
"""

from __future__ import annotations

import gc
import os
import resource
import time

from gevent import get_hub

_PAGE = os.sysconf("SC_PAGE_SIZE")


class ProcessStats:
    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def register(self, metrics) -> None:
        metrics.gauge("system_context_switches", self.context_switches)
        metrics.gauge("system_gc_count", lambda: sum(g["collections"] for g in gc.get_stats()))
        metrics.gauge("system_words_reclaimed_by_gc", lambda: sum(g["collected"] for g in gc.get_stats()))
        metrics.gauge("system_runtime", lambda: int(time.process_time() * 1000))
        metrics.gauge("system_run_queue", lambda: get_hub().loop.pendingcnt)
        metrics.gauge("system_utilization", self.utilization)
        metrics.gauge("vm_memory_total", self.rss)

    @staticmethod
    def context_switches() -> int:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_nvcsw + usage.ru_nivcsw

    def utilization(self) -> int:
        """Percent of one core this process used since the previous reading."""
        now = (time.monotonic(), time.process_time())
        wall, cpu = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return round(100 * cpu / wall) if wall > 0 else 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
