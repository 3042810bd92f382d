"""Client id -> queue: registration, takeover, persistent sessions and expiry.

Persistent sessions (v3 clean_session=0, v5 Session Expiry Interval > 0)
are recorded in the metadata store ('sessions' and 'subscriptions' prefixes)
so a restarted node keeps them; their queues are created lazily, when a
message arrives for them or the client reconnects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from vmqpy.broker.message import Msg
from vmqpy.broker.queue import RETAIN_FLAG, Queue, QueueOpts
from vmqpy.broker.router import Subscription
from vmqpy.mqtt.topic import parse_shared

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.broker.session import Session

log = logging.getLogger(__name__)

SESSIONS = "sessions"
SUBSCRIPTIONS = "subscriptions"
NEVER = None  # session expiry: never


def split_filter(filt: str) -> tuple[str, str | None]:
    """('a/b', None) for a plain filter, ('a/b', 'group') for $share/group/a/b."""
    shared = parse_shared(filt)
    return (shared[1], shared[0]) if shared else (filt, None)


class Forwarding:
    """Where a queue was, while the session moves to another node: what is routed here for it
    goes there (`send(msg, qos, retain)`) until the new node routes its subscriptions itself."""

    __slots__ = ("send",)
    online = False
    sessions: tuple = ()

    def __init__(self, send: Callable[[Msg, int, bool], None]) -> None:
        self.send = send

    def enqueue(self, msg: Msg, qos: int, retain: bool, sub_ids: tuple = (), group: str | None = None) -> None:
        self.send(msg, qos, retain)


class Registry:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.queues: dict[tuple[str, str], Queue] = {}
        self.moved: dict[tuple[str, str], Forwarding] = {}  # sessions being handed to another node
        # Subscribers inside the node (vmq_bridge): no session, `enqueue` like a queue; their client
        # ids hold a NUL, which no MQTT client id can.
        self.internal: dict[tuple[str, str], Any] = {}
        self.sessions: dict[tuple[str, str], dict] = dict(node.metadata.fold(SESSIONS))
        self.subscriptions: dict[tuple[str, str], dict[str, Subscription]] = {}
        for sid, subs in node.metadata.fold(SUBSCRIPTIONS):
            table = {f: Subscription.from_dict(d) for f, d in subs.items()}
            self.subscriptions[sid] = table
            for filt, sub in table.items():
                node.router.add(sid, *self._route_key(filt, sub))
        now = time.time()
        for sid, meta in self.sessions.items():
            if meta["offline_since"] is None and meta["expiry"] is not NEVER:
                # Online when the node went down: offline since this start.
                meta = self.sessions[sid] = {**meta, "offline_since": now}
                node.metadata.put(SESSIONS, sid, meta)
            self._schedule_expiry(sid, meta)

    @staticmethod
    def _route_key(filt: str, sub: Subscription) -> tuple:
        plain, group = split_filter(filt)
        return plain, sub, group

    # -- sessions -----------------------------------------------------------
    def register(self, session: Session, sid: tuple[str, str], clean_start: bool,
                 expiry: float | None, opts: QueueOpts, moved: dict | None = None) -> tuple[Queue, bool]:
        """Attach `session` to the queue of `sid`; returns (queue, session_present). `moved`: the
        session's state handed over by another node (see hand_off), installed before `session` attaches."""
        queue = self.queue_for(sid)
        ends = clean_start
        if queue is not None and queue.sessions:
            if self.node.config["allow_multiple_sessions"]:
                clean_start = ends = False  # join the live sessions, never wipe their queue
            else:
                # A session without expiry (clean session, or Session Expiry 0) ends with the
                # connection taken over: no session present, and its will goes out now.
                ends = clean_start or not queue.opts.persistent
                for old in list(queue.sessions):
                    queue.detach(old, handover=True)
                    old.taken_over(ends)
        if queue is not None and ends:
            self._destroy(sid, queue)
            queue = None
        present = queue is not None
        if queue is None:
            queue = Queue(self.node, sid, opts)
            self.queues[sid] = queue
            self.node.metrics.counters["queue_setup"] += 1
        else:
            queue.opts.max_online_messages = opts.max_online_messages
            queue.opts.max_offline_messages = opts.max_offline_messages
            queue.opts.queue_type = opts.queue_type
        queue.opts.persistent = expiry != 0
        if queue.opts.persistent:
            meta = {"expiry": expiry, "offline_since": None}
            self.sessions[sid] = meta
            self.node.metadata.put(SESSIONS, sid, meta)
        elif sid in self.sessions:
            del self.sessions[sid]
            self.node.metadata.delete(SESSIONS, sid)
        self._replicate(sid)
        if moved is not None and not clean_start:
            self._install(queue, moved)
            present = True
        queue.attach(session)
        if self.node.cluster is not None:
            self.node.cluster.presence(sid)
        return queue, present

    # -- sessions moving between nodes (the cluster's queue migration) --------
    def hand_off(self, sid: tuple[str, str], clean_start: bool,
                 forward: Callable[[Msg, int, bool], None]) -> dict | None:
        """Another node takes `sid` over: its connections here are taken over; unless `clean_start`,
        returns what moves ({"subs": {filter: dict}, "msgs": [(Msg, qos, retain)]}, oldest first) and
        forwards what is routed here for it meanwhile, until `handed_off`. None: nothing was here."""
        queue = self.queue_for(sid)
        if queue is None and sid not in self.subscriptions:
            return None
        if queue is not None:
            for old in list(queue.sessions):
                queue.detach(old, handover=True)
                old.taken_over(clean_start)
        if clean_start or (queue is not None and not queue.opts.persistent):
            self._destroy(sid, queue)  # a clean session ends with its connection [MQTT-3.1.2-6]
            return None
        table = self.subscriptions.get(sid) or {}
        state = {"subs": {f: sub.to_dict() for f, sub in table.items()},
                 "msgs": self._messages(queue) if queue is not None else []}
        self.moved[sid] = Forwarding(forward)
        if queue is not None:
            queue.purge()
            self.queues.pop(sid, None)
        if self.sessions.pop(sid, None) is not None:
            self.node.metadata.delete(SESSIONS, sid)
        self.node.metadata.delete(SUBSCRIPTIONS, sid)
        self.node.msg_store.flush()
        return state

    def adopt(self, sid: tuple[str, str], moved: dict, expiry: float | None) -> None:
        """Keep offline a persistent session handed over without its client (its node left)."""
        if sid in self.queues and self.queues[sid].sessions:
            return  # its client reconnected here meanwhile and has its own state
        meta = {"expiry": expiry, "offline_since": time.time()}
        self.sessions[sid] = meta
        self.node.metadata.put(SESSIONS, sid, meta)
        self._replicate(sid)
        queue = self.queue_for(sid)
        self._install(queue, moved)
        self._schedule_expiry(sid, meta)
        self.node.msg_store.flush()

    def handed_off(self, sid: tuple[str, str]) -> None:
        """The node `sid` moved to routes its subscriptions now: stop routing and forwarding here."""
        if self.moved.pop(sid, None) is None:
            return
        for filt in self.subscriptions.pop(sid, None) or ():
            self._unroute(sid, filt)

    def _messages(self, queue: Queue) -> list[tuple[Msg, int, bool]]:
        """Everything `queue` holds, oldest first: stored messages, then those only in memory."""
        stored = [(msg, flags & 3, bool(flags & RETAIN_FLAG))
                  for _, msg, flags in self.node.msg_store.read(queue.key, None)] if queue.opts.persistent else []
        memory = [(o.msg, o.qos, o.retain) for o in (*queue.inflight.values(), *queue.pending) if o.seq is None]
        return stored + memory

    def _install(self, queue: Queue, moved: dict) -> None:
        """The state hand_off returned on another node; `installed()` once its subscriptions route here."""
        for filt, sub in moved["subs"].items():
            self.subscribe(queue.sid, filt, Subscription.from_dict(sub))
        for msg, qos, retain in moved["msgs"]:
            queue.enqueue(msg, qos, retain)
        if "installed" in moved:
            moved["installed"]()

    def unregister(self, session: Session, queue: Queue, expiry: float | None) -> None:
        """The session closed: keep a persistent queue offline, drop a clean one."""
        if session not in queue.sessions:
            return  # taken over: the queue belongs to a newer session now
        queue.detach(session)
        if queue.sessions:
            return
        sid = queue.sid
        if expiry == 0:
            self._destroy(sid, queue)
            self.node.hooks_event("on_client_gone", sid)
            return
        meta = {"expiry": expiry, "offline_since": time.time()}
        self.sessions[sid] = meta
        self.node.metadata.put(SESSIONS, sid, meta)
        queue.opts.persistent = True
        self._schedule_expiry(sid, meta)
        self._replicate(sid)
        if self.node.cluster is not None:
            self.node.cluster.presence(sid)
        self.node.hooks_event("on_client_offline", sid)

    def _schedule_expiry(self, sid: tuple[str, str], meta: dict) -> None:
        if meta["expiry"] is NEVER or meta["offline_since"] is None:
            return
        delay = max(0.0, meta["offline_since"] + meta["expiry"] - time.time())
        timer = gevent.spawn_later(delay, self.expire, sid)
        queue = self.queues.get(sid)
        if queue is not None:
            queue.expiry_timer = timer

    def expire(self, sid: tuple[str, str]) -> None:
        queue = self.queues.get(sid)
        if queue is not None and queue.sessions:
            return
        log.info("session %s expired", sid)
        self._destroy(sid, queue)
        self.node.msg_store.flush()  # no session greenlet flushes for a timer
        self.node.hooks_event("on_session_expired", sid)

    def _destroy(self, sid: tuple[str, str], queue: Queue | None) -> None:
        table = self.subscriptions.get(sid)
        if table:
            for filt in table:
                self._unroute(sid, filt)
            self.node.hooks_event("on_topic_unsubscribed", sid, "all_topics")
        self.subscriptions.pop(sid, None)
        self.node.metadata.delete(SUBSCRIPTIONS, sid)
        if queue is None:
            self.node.msg_store.delete_queue(f"{sid[0]}\x00{sid[1]}")
        else:
            queue.purge()
            self.node.metrics.counters["queue_teardown"] += 1
        self.queues.pop(sid, None)
        if self.sessions.pop(sid, None) is not None:
            self.node.metadata.delete(SESSIONS, sid)
            self._replicate(sid)

    def _replicate(self, sid: tuple[str, str]) -> None:
        # In a cluster the persistent sessions are replicated, so that they outlive their node
        if self.node.cluster is not None:
            self.node.cluster.session_changed(sid)

    def queue_for(self, sid: tuple[str, str]) -> Queue | None:
        """The queue of `sid`, loading an offline persistent one on first use (a Forwarding while
        the session moves to another node)."""
        queue = self.queues.get(sid)
        if queue is None and sid in self.internal:
            return self.internal[sid]
        if queue is None and sid in self.moved:
            return self.moved[sid]
        if queue is None and sid in self.sessions:
            cfg = self.node.config
            queue = Queue(self.node, sid, QueueOpts(
                cfg["max_online_messages"], cfg["max_offline_messages"], cfg["queue_type"], True,
                cfg["queue_deliver_mode"]))
            self.queues[sid] = queue
            self.node.metrics.counters["queue_initialized_from_storage"] += 1
        return queue

    # -- subscriptions ------------------------------------------------------
    def subscribe(self, sid: tuple[str, str], filt: str, sub: Subscription, persist: bool = True) -> bool:
        """Add or replace one subscription; True if it did not exist before. `persist` False: the
        caller calls `persist_subscriptions` once for a packet's filters (the table is written whole)."""
        table = self.subscriptions.setdefault(sid, {})
        existed = filt in table
        table[filt] = sub
        self.node.router.add(sid, *self._route_key(filt, sub))
        if persist:
            self._persist_subs(sid)
        if self.node.cluster is not None:
            self.node.cluster.subscribed(sid[0], filt, not existed)
        return not existed

    def unsubscribe(self, sid: tuple[str, str], filt: str, notify: bool = True, persist: bool = True) -> bool:
        """Remove one subscription; `notify`: run on_topic_unsubscribed (vmq-admin session unsubscribe
        does only with --plugin); `persist` False: the caller calls `persist_subscriptions` once."""
        table = self.subscriptions.get(sid)
        if not table or filt not in table:
            return False
        del table[filt]
        self._unroute(sid, filt)
        if persist:
            self._persist_subs(sid)
        if notify:
            self.node.hooks_event("on_topic_unsubscribed", sid, [filt])
        return True

    def _unroute(self, sid: tuple[str, str], filt: str) -> None:
        plain, group = split_filter(filt)
        self.node.router.remove(sid, plain, group)
        if self.node.cluster is not None:
            self.node.cluster.unsubscribed(sid[0], filt)

    def persist_subscriptions(self, sid: tuple[str, str]) -> None:
        self._persist_subs(sid)

    def _persist_subs(self, sid: tuple[str, str]) -> None:
        if sid in self.sessions:
            table = self.subscriptions.get(sid) or {}
            self.node.metadata.put(SUBSCRIPTIONS, sid, {f: s.to_dict() for f, s in table.items()})
            self._replicate(sid)
