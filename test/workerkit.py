"""Helpers for nodes with nr_of_workers > 1: clients pinned to a worker, the workers' pids."""

from __future__ import annotations

import itertools

from clients import Paho

from vmqpy.cluster.accept import owner


def on(worker: int, prefix: str, workers: int) -> str:
    """A client id starting with `prefix` that worker `worker` owns."""
    return next(c for i in itertools.count() if owner("", c := f"{prefix}-{i}", workers) == worker)


def connect(b, worker: int, prefix: str, workers: int, **kw) -> Paho:
    c = Paho(b.port, on(worker, prefix, workers), **kw)
    c.connect()
    return c


def worker_pids(b) -> dict[int, tuple[int, bool]]:
    """worker -> (pid, ready), from `vmq-admin workers show`."""
    return {int(r["worker"]): (int(r["pid"]), r["ready"] == "true") for r in b.rows("workers", "show")}
