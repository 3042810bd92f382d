"""Who serves connections' input: reader greenlets reused from one job to the next, and the loop
callback that serves one turn's input of parked connections in the order the spec needs
(session.py holds the connection itself)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from gevent.hub import get_hub
from greenlet import getcurrent, greenlet

if TYPE_CHECKING:
    from vmqpy.broker.session import Session

log = logging.getLogger(__name__)

READERS_IDLE_MAX = 64  # reader greenlets kept for reuse


class Readers:
    """Greenlets reused from one job to the next: a parked connection's input, an accepted socket.

    A new greenlet costs a Python frame stack of its own (an mmap, then an
    munmap when it ends): about a sixth of the CPU at 2,000 msg/s. A reader
    waits in the hub between jobs; up to READERS_IDLE_MAX wait.
    """

    def __init__(self) -> None:
        self.idle: list[greenlet] = []

    def spawn(self, fn: Callable, *args) -> None:
        """Run fn(*args) in a reader now; called from the hub (watcher callbacks, the accept loop)."""
        reader = self.idle.pop() if self.idle else greenlet(self._run, get_hub())
        reader.switch(fn, args)

    def _run(self, fn: Callable, args: tuple) -> None:
        hub_switch = get_hub().switch
        me = getcurrent()
        idle = self.idle
        while True:
            try:
                fn(*args)
            except Exception:  # as gevent does for a greenlet's uncaught error: log, go on
                log.exception("unhandled error in %r", fn)
            if len(idle) >= READERS_IDLE_MAX:
                return
            idle.append(me)
            fn, args = hub_switch()


readers = Readers()


class Wakeups:
    """Parked connections with input this turn of the loop, read first and then served: whatever
    may change subscriptions before the batches that only publish; then the turn's new connections.

    A PUBLISH must reach a subscription whose SUBSCRIBE was read before it, on any connection.
    Neither libev's order of the watchers one poll found ready (a stack) nor epoll's (a
    level-triggered fd keeps its place in the ready list from its last report) is the order the
    bytes arrived in, so the turn's input counts as simultaneous. A new connection must not
    overtake the DISCONNECT or EOF of the one it replaces (wills, takeover, session expiry). The
    watchers only note their connection here, the listeners their accepted sockets; one loop
    callback, after the turn's watchers, serves them.
    """

    def __init__(self) -> None:
        self.woken: list[Session] = []
        self.accepted: list[tuple] = []
        self._due = False

    def add(self, session: Session) -> None:
        """A parked connection's read watcher callback (in the hub)."""
        self.woken.append(session)
        if not self._due:
            self._schedule()

    def start(self, fn: Callable, *args) -> None:
        """The listeners' spawn: serve an accepted socket, fn(*args), in a reader after the turn's input."""
        self.accepted.append((fn, args))
        if not self._due:
            self._schedule()

    def _schedule(self) -> None:
        self._due = True
        get_hub().loop.run_callback(self._serve)

    def _serve(self) -> None:
        self._due = False
        woken, self.woken = self.woken, []
        publishing = []
        for session in reversed(woken):
            if not session.closed:
                packets = session._read_woken()
                if not packets:
                    continue
                if session._publishes_only(packets):
                    publishing.append((session, packets))
                else:
                    session._hand_over(packets)
        # Publishes last: a SUBSCRIBE read in the same turn is in effect for them.
        for session, packets in publishing:
            if session._in_hub():
                session._handle_in_hub(packets)
            else:
                session._hand_over(packets)
        accepted, self.accepted = self.accepted, []
        for fn, args in accepted:
            readers.spawn(fn, *args)


wakeups = Wakeups()
