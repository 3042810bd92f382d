"""SUBSCRIBEs other workers have read that this one may not hold yet (docs/workers.md).

A worker that reads a PUBLISH after another worker read a SUBSCRIBE matching it
must deliver to that subscription, though the T_SUB telling it so may still be
on the way. Each worker counts the SUBSCRIBEs it starts handling in its cell of
a table every worker maps (a temporary file the parent makes, as
limits.ConnectionTable), and once one is handled sends the count on its stream
to every other worker (T_CLOCK, after the T_SUBs it caused). So a worker whose
view of another's cell is behind the cell holds all but that worker's newest
subscriptions: a publish routed meanwhile also goes to that worker, which
routes it to its own subscribers only. Never a duplicate; at most one record
more per publish while subscriptions change.
"""

from __future__ import annotations

import mmap
import os
import tempfile

CELL = 8


class SubscribeClock:
    def __init__(self, fd: int, workers: int, index: int) -> None:
        self.fd = fd
        self.index = index
        self._map = mmap.mmap(fd, workers * CELL)
        self.cells = memoryview(self._map).cast("q")   # shared: each worker writes its own cell
        self._seen = bytearray(workers * CELL)
        self.seen = memoryview(self._seen).cast("q")   # ours: each worker's count whose T_SUBs we hold
        self.seen[index] = self.cells[index]

    @staticmethod
    def create(workers: int) -> int:
        """The parent's table, zeroed: an inheritable fd to pass to the workers."""
        f = tempfile.TemporaryFile()
        fd = os.dup(f.fileno())
        f.close()
        os.ftruncate(fd, workers * CELL)
        os.set_inheritable(fd, True)
        return fd

    def tick(self) -> None:
        """A SUBSCRIBE is being handled here: the others route to us until our T_CLOCK comes."""
        n = self.cells[self.index] + 1
        self.cells[self.index] = n
        self.seen[self.index] = n

    def now(self) -> int:
        """Our count: what a T_CLOCK sent now says."""
        return self.cells[self.index]

    def seen_from(self, worker: int, count: int) -> None:
        """Worker's T_CLOCK: we hold its subscriptions up to `count`."""
        if count > self.seen[worker]:
            self.seen[worker] = count

    def ahead(self) -> list[int]:
        """The workers with SUBSCRIBEs we may not hold yet (the common answer, none, is one compare)."""
        cells, seen = self.cells, self.seen
        if cells == seen:
            return []
        return [k for k in range(len(seen)) if cells[k] > seen[k]]

    def close(self) -> None:
        self.cells.release()
        self._map.close()
        os.close(self.fd)
