"""Connection pools of vmq_diversity, one per `pool_id` a script ensures (VerneMQ's poolboy pools).

A pool holds at most `size` connections, made when first needed. A call waits for a free
connection and for its answer together at most `timeout` seconds; the database is then
unavailable for that call (DatabaseUnavailable), the connection is dropped, and the outage
is logged once (not per client) and counted in the metrics, until a call succeeds again.

The drivers are pure Python (PyMySQL, redis-py, pymemcache) or wait through `select`
(psycopg): with gevent's monkey-patching, which every vmqpy node process applies at start,
a slow database parks only the calling greenlet. Without it (a library user), calls run in
gevent's thread pool so the hub never blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import gevent
from gevent import monkey
from gevent.queue import Empty, LifoQueue

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


class Health:
    """Outage bookkeeping of every pool: one log line when a database goes and when it comes back."""

    def __init__(self, metrics: Any = None) -> None:
        self._metrics = metrics
        self.down: set[str] = set()

    def failed(self, pool: str, error: BaseException) -> None:
        if self._metrics is not None:
            self._metrics.inc("diversity_db_errors")
        if pool not in self.down:
            self.down.add(pool)
            if self._metrics is not None:
                self._metrics.inc("diversity_db_outages")
            log.error("vmq_diversity: database of pool %s unavailable: %s", pool, error)

    def succeeded(self, pool: str) -> None:
        if pool in self.down:
            self.down.discard(pool)
            log.info("vmq_diversity: database of pool %s is available again", pool)


def offload(fn: Callable[[], T]) -> T:
    """Run a blocking driver call without blocking the hub."""
    if monkey.is_module_patched("socket"):
        return fn()
    return gevent.get_hub().threadpool.apply(fn)


class Pool(Generic[C]):
    def __init__(self, name: str, connect: Callable[[], C], size: int, timeout: float, health: Health,
                 close: Callable[[C], None] = lambda conn: conn.close()) -> None:
        self.name = name
        self._connect = connect
        self._close = close
        self._timeout = timeout
        self._health = health
        self._idle: LifoQueue = LifoQueue()
        self._free = size  # connections that may still be made

    def run(self, fn: Callable[[C], T]) -> T:
        """`fn(connection)`; raises DatabaseUnavailable when the database fails or is too slow.

        Errors of the query itself (a driver's ProgrammingError, ...) propagate unchanged and
        leave the connection in the pool. A pooled connection found broken (the server restarted
        since) is retried once on a fresh one, after dropping the other idle ones.
        """
        deadline = gevent.Timeout(self._timeout, DatabaseUnavailable(f"no answer within {self._timeout:g} s"))
        deadline.start()
        try:
            try:
                result = self._attempt(fn, retry=True)
            except DatabaseUnavailable as e:
                self._health.failed(self.name, e)
                raise
        finally:
            deadline.close()
        self._health.succeeded(self.name)
        return result

    def _attempt(self, fn: Callable[[C], T], retry: bool) -> T:
        conn, reused = None, False
        try:
            conn, reused = self._checkout()
            result = offload(lambda: fn(conn))
        except DatabaseUnavailable:
            self._discard(conn)
            raise
        except Exception as e:
            if not isinstance(e, OSError | EOFError) and not _is_connection_error(e):
                self._checkin(conn)
                raise
            self._discard(conn)
            if reused and retry:
                self.close()
                return self._attempt(fn, retry=False)
            raise DatabaseUnavailable(str(e).strip() or type(e).__name__) from None
        except BaseException:
            self._discard(conn)  # a Timeout of the caller, GreenletExit: the connection is mid-way
            raise
        self._checkin(conn)
        return result

    def close(self) -> None:
        """Close the idle connections (those in use are closed when they come back broken)."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except Empty:
                return
            self._discard(conn)

    def _checkout(self) -> tuple[C, bool]:
        """(connection, whether it was pooled before)."""
        try:
            return self._idle.get_nowait(), True
        except Empty:
            pass
        if self._free > 0:
            self._free -= 1
            try:
                return offload(self._connect), False
            except BaseException:
                self._free += 1
                raise
        return self._idle.get(), True  # the deadline bounds the wait

    def _checkin(self, conn: C | None) -> None:
        if conn is not None:
            self._idle.put(conn)

    def _discard(self, conn: C | None) -> None:
        if conn is not None:
            self._free += 1
            self._quietly_close(conn)

    def _quietly_close(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception:  # a broken connection may fail to close; it is gone either way
            log.debug("vmq_diversity: closing a connection of pool %s failed", self.name, exc_info=True)


# Driver exceptions that mean "the server is gone", by class name: each driver has its own
# hierarchy and importing them all here would load every driver.
_CONNECTION_ERRORS = frozenset({
    "OperationalError", "InterfaceError",  # DB-API: psycopg, PyMySQL
    "ConnectionError", "TimeoutError",  # redis-py
    "MemcacheUnexpectedCloseError", "MemcacheServerError",  # pymemcache
    "ServerSelectionTimeoutError", "AutoReconnect", "NetworkTimeout", "ConnectionFailure",  # pymongo
})


def _is_connection_error(e: BaseException) -> bool:
    return any(cls.__name__ in _CONNECTION_ERRORS for cls in type(e).__mro__)
