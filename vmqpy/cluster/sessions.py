"""Persistent sessions in the replicated metadata: what a departed node's clients find elsewhere.

Prefixes of the replica (metadata.py):

- `sessions`: (mountpoint, client_id) -> {"node", "expiry", "subs"}, written by
  the endpoint holding the session whenever what it holds changes: a
  persistent session registered or ended, its subscriptions or expiry
  changed. A reconnect that changes nothing writes nothing, and clean sessions
  never write, so client-id churn costs no metadata.
- `queued`: (endpoint,) -> {"messages", "sessions"}: how many offline messages
  and persistent sessions the endpoint keeps on its disk, refreshed every
  second when it changed. It is what a leave reports as lost when the node
  that held them is gone for good.

When a member leaves, every endpoint re-creates, offline, the sessions the
replica still places on that member and the ring now gives to this endpoint
(the worker of the node the ring picks for the client id, as registrations
do): their clients reconnect anywhere and find their subscriptions. Their
offline messages were on the departed node's disk, unless
offline_message_replica kept copies on the others (offline_replica.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent
from gevent.event import AsyncResult

from vmqpy.cluster import links as iw
from vmqpy.cluster.metadata import QUEUED, SESSIONS
from vmqpy.cluster.registration import msg_fields

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

log = logging.getLogger(__name__)

REPORT_EVERY = 1.0  # seconds between refreshes of this endpoint's `queued` figures


class ClusterSessions:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        self.replica = runtime.meta.replica
        self._greenlet: gevent.Greenlet | None = None
        self._dirty: set[tuple[str, str]] = set()
        self._departures: dict[str, AsyncResult] = {}

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._report_loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    # -- what this endpoint writes ------------------------------------------------
    def changed(self, sid: tuple[str, str]) -> None:
        """Registry's seam: the session of `sid` here changed. Replicated once the current batch is done
        (a SUBSCRIBE of many filters, a session installed whole, is one write)."""
        if not self._dirty:
            gevent.get_hub().loop.run_callback(self._flush)
        self._dirty.add(sid)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for sid in dirty:
            record = self._entry(sid)
            if record is not None:
                self.rt.meta.publish(record)

    def _entry(self, sid: tuple[str, str]) -> tuple | None:
        """The replica record that makes the entry of `sid` say what is here now; None if it does."""
        registry = self.rt.node.registry
        meta = registry.sessions.get(sid)
        if meta is None:
            return self.replica.delete(SESSIONS, sid)
        subs = {f: s.to_dict() for f, s in (registry.subscriptions.get(sid) or {}).items()}
        value = {"node": self.rt.node.name, "expiry": meta["expiry"], "subs": subs}
        return None if self.replica.get(SESSIONS, sid) == value else self.replica.put(SESSIONS, sid, value)

    def _report_loop(self) -> None:
        key = (self.rt.me,)
        while True:
            gevent.sleep(REPORT_EVERY)
            value = {"messages": self.rt.node.msg_store.stats()["index_entries"],
                     "sessions": len(self.rt.node.registry.sessions),
                     "replica": self.rt.node.config["offline_message_replica"]}
            if self.replica.get(QUEUED, key) != value:
                self.rt.meta.publish(self.replica.put(QUEUED, key, value))

    # -- a member leaving --------------------------------------------------------
    def held_by(self, name: str) -> tuple[int, int, bool]:
        """(persistent sessions the replica places on node `name`, offline messages it last said it
        kept, whether it keeps copies of them on other nodes)."""
        sessions = sum(1 for _, v in self.replica.fold(SESSIONS) if v.get("node") == name)
        reports = [v for (pid,), v in self.replica.fold(QUEUED) if pid.partition("/")[0] == name]
        messages = sum(int(v.get("messages", 0)) for v in reports)
        return sessions, messages, bool(reports) and all(v.get("replica") for v in reports)

    def departure(self, name: str) -> AsyncResult:
        """Member `name` left: re-create the sessions it held that the ring now gives us (once; the
        result, [sessions re-created here, messages restored from copies kept here], says when done)."""
        result = self._departures.get(name)
        if result is None:
            result = self._departures[name] = AsyncResult()
            gevent.spawn(self._depart, name, result)
        return result

    def rejoined(self, name: str) -> None:
        """`name` is a member (again): a later leave of it is a new departure."""
        self._departures.pop(name, None)

    def _depart(self, name: str, result: AsyncResult) -> None:
        try:
            result.set(self._recreate_all(name))
        except Exception as e:
            log.exception("re-creating the sessions of %s failed", name)
            result.set_exception(e)

    def _recreate_all(self, name: str) -> list[int]:
        """The sessions of departed node `name` that the ring gives us, with the copies of their offline
        messages wherever they are kept (offline_replica.py): [sessions made here, messages restored]."""
        members = self.rt.registrations.members()
        if not members or name in members:
            return [0, 0]
        copies = self.rt.copies.take(name)
        made = restored = 0
        for (mountpoint, client_id), value in self.replica.fold(SESSIONS):
            sid = (mountpoint, client_id)
            if value.get("node") != name:
                continue
            msgs = copies.pop(sid, [])
            restored += len(msgs)
            target = self.rt.registrations.endpoint_for(members, sid)
            if target == self.rt.me:
                made += self._recreate(sid, value, msgs)
            elif msgs:  # a copy kept here for a session re-created elsewhere: it goes there
                peer = self.rt.links.peers.get(target)
                if peer is not None:
                    peer.send((iw.T_MOVE, list(sid), value.get("subs") or {},
                               [(msg_fields(m), q, r) for m, q, r in msgs], True, value.get("expiry")))
            gevent.sleep(0)  # many sessions: let connections be served in between
        for (pid,), _ in self.replica.fold(QUEUED):
            if pid.partition("/")[0] == name:
                record = self.replica.delete(QUEUED, (pid,))
                if record is not None:
                    self.rt.meta.publish(record)
        if made or restored:
            log.warning("node %s left: %d of its persistent sessions re-created here, %d offline messages "
                        "restored from their copies", name, made, restored)
        return [made, restored]

    def report_departure(self, name: str, timeout: float) -> str:
        """After `name` was removed while down: wait until every endpoint re-created its share of its
        sessions, and say what that saved and what is lost (the leave's answer, and the log)."""
        _, reported, copied = self.held_by(name)
        answers = self.rt.registrations.ask_everyone("departed", (name,), timeout)
        done = [a for a in answers.values() if isinstance(a, (list, tuple))]  # msgpack: tuples
        made, restored = sum(a[0] for a in done), sum(a[1] for a in done)
        text = f"{name} was down: {made} of its persistent sessions re-created on the nodes that stay"
        if copied:
            text += f", {restored} offline messages restored from their copies"
        lost = max(0, reported - restored)
        if lost or not copied:
            text += f", {lost} offline messages that were only on its disk are lost"
        if len(done) < len(answers):
            text += f" ({len(answers) - len(done)} endpoints did not answer within {timeout:.0f}s)"
        log.warning("%s", text)
        return text

    def _recreate(self, sid: tuple[str, str], value: dict, msgs: list) -> int:
        registry = self.rt.node.registry
        if sid in registry.sessions or sid in registry.queues:  # its client was back here first
            queue = registry.queue_for(sid)
            for msg, qos, retain in msgs:
                queue.enqueue(msg, qos, retain)
            return 0
        registry.adopt(sid, {"subs": value.get("subs") or {}, "msgs": msgs}, value.get("expiry"))
        return 1
