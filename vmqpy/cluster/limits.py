"""A listener's max_connections for the whole node when nr_of_workers > 1 (docs/workers.md).

The parent keeps a small shared table (a temporary file mapped by every
process): one row per worker, one 8-byte cell per MQTT listener the parent
bound, holding how many connections that worker serves on that listener.
Each worker writes only its own row; the parent zeroes a worker's row when
the worker exits (its connections went with it).

A worker admits a connection when its live count plus the other rows is
below the limit, and writes its row before serving it, so other workers see
the new connection at once. Rows are not rewritten when connections close;
a worker that finds the node full asks the others to rewrite theirs
(WorkerRuntime.recount, a barrier over the links) and looks again, so a
stale row costs a round trip at the limit, never a wrong refusal. Two
workers admitting at the same instant at the limit may both refuse.
"""

from __future__ import annotations

import mmap
import os
import tempfile

CELL = 8


class ConnectionTable:
    def __init__(self, fd: int, workers: int, keys: list[str]) -> None:
        self.fd = fd
        self.workers = workers
        self.slots = {key: i for i, key in enumerate(keys)}
        self.width = len(keys)
        size = max(1, workers * self.width) * CELL
        self._map = mmap.mmap(fd, size)
        self.cells = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, workers: int, keys: list[str]) -> ConnectionTable:
        """The parent's table, zeroed; its fd is inheritable (pass it to the workers)."""
        f = tempfile.TemporaryFile()
        fd = os.dup(f.fileno())
        f.close()
        os.ftruncate(fd, max(1, workers * len(keys)) * CELL)
        os.set_inheritable(fd, True)
        return cls(fd, workers, keys)

    def slot(self, key: str) -> int | None:
        return self.slots.get(key)

    def set(self, worker: int, slot: int, n: int) -> None:
        self.cells[worker * self.width + slot] = n

    def others(self, worker: int, slot: int) -> int:
        """Connections on `slot` served by every worker but `worker`."""
        cells, width = self.cells, self.width
        return sum(cells[k * width + slot] for k in range(self.workers) if k != worker)

    def clear(self, worker: int) -> None:
        for slot in range(self.width):
            self.set(worker, slot, 0)

    def close(self) -> None:
        self.cells.release()
        self._map.close()
        os.close(self.fd)
