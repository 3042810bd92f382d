"""The per-client-id queue: holds a subscriber's messages and feeds its session.

Publishers call `enqueue` (a non-blocking append that marks the queue for
delivery). The node's `Dispatcher` delivers marked queues when the batch that
marked them ends, in the greenlet that handled it (DESIGN §3): `pending` is
drained as the session's in-flight window allows and written straight into
the subscriber's socket with one non-blocking send per batch. A queue has no
greenlet of its own; while a session's socket has a backlog it holds back.

Where messages live:
- `pending` (memory): messages to send, bounded by max_online_messages.
- `inflight` (memory): sent QoS 1/2 messages awaiting their ack, by packet id;
  they survive a reconnect of a persistent session and are resent with DUP.
- the message store (RocksDB): QoS 1/2 messages that arrive for a persistent
  session while it is offline, and everything after them until that backlog is
  drained, so order holds; they leave the store only when acked. `backlog`
  counts the stored entries not yet read back into memory.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent
from gevent.hub import get_hub
from greenlet import getcurrent, greenlet

from vmqpy.broker.message import Msg

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.broker.session import Session

REFILL_BATCH = 500
RETRY_TICK = 1.0  # seconds between looks for v3 deliveries due for a resend
RETAIN_FLAG = 4  # delivery flags stored with an entry: qos in bits 0-1, retain in bit 2
# Drop reasons that have a counter of their own besides queue_message_drop.
_DROP_COUNTERS = {"shed": "queue_message_shed", "max_packet_size_exceeded": "queue_message_too_large"}


@dataclass(slots=True)
class QueueOpts:
    max_online_messages: int = 1000
    max_offline_messages: int = 1000
    queue_type: str = "fifo"
    persistent: bool = False
    deliver_mode: str = "fanout"


class Out:
    """One delivery of a message to this queue's subscriber."""

    __slots__ = ("msg", "qos", "retain", "sub_ids", "seq", "group", "pid", "released", "owner", "sent_at")

    def __init__(self, msg: Msg, qos: int, retain: bool, sub_ids: tuple = (), seq: int | None = None,
                 group: str | None = None):
        self.msg = msg
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.seq = seq          # set when the entry is in the message store
        self.group = group      # the shared subscription group it was delivered through
        self.pid = 0
        self.released = False  # QoS 2: PUBREC received, PUBREL sent
        self.owner: Session | None = None
        self.sent_at = 0.0


class Queue:
    __slots__ = ("node", "sid", "key", "opts", "pending", "inflight", "awaiting_rel", "sessions", "backlog",
                 "_cursor", "_next_pid", "_rr", "_dirty", "_busy", "offline_since", "expiry_timer", "dropped",
                 "started_at")

    def __init__(self, node: Node, sid: tuple[str, str], opts: QueueOpts) -> None:
        self.node = node
        self.sid = sid
        self.key = f"{sid[0]}\x00{sid[1]}"
        self.opts = opts
        self.pending: deque[Out] = deque()
        self.inflight: dict[int, Out] = {}
        self.awaiting_rel: set[int] = set()  # inbound QoS 2 ids between PUBREC and PUBREL
        self.sessions: list[Session] = []
        self.backlog = node.msg_store.count(self.key) if opts.persistent else 0
        self._cursor: int | None = None  # last store seq read into memory
        self._next_pid = 1
        self._rr = 0
        self._dirty = False  # marked for the dispatcher
        self._busy = 0  # 1: delivering; 2: and asked again meanwhile (a hook blocked it)
        self.offline_since: float | None = time.time()
        self.expiry_timer: gevent.Greenlet | None = None
        self.dropped = 0  # messages this queue dropped (session show --dropped)
        self.started_at = int(time.time() * 1000)  # session show --queue_started_at, ms as VerneMQ's

    # -- sessions -----------------------------------------------------------
    def attach(self, session: Session) -> None:
        """Make `session` a receiver; deliveries start with `start_delivery` (after CONNACK)."""
        self.sessions.append(session)
        self.node.hooks_event("on_client_wakeup", self.sid)  # as VerneMQ's vmq_queue add_session
        self.offline_since = None
        if self.expiry_timer is not None:
            self.expiry_timer.kill(block=False)
            self.expiry_timer = None

    def start_delivery(self, session: Session) -> None:
        self._resend_inflight(session)
        self.wake()

    def detach(self, session: Session, handover: bool = False) -> None:
        """`session` leaves; `handover`: a new connection takes its place at once (takeover)."""
        if session in self.sessions:
            self.sessions.remove(session)
        orphans = [out for out in self.inflight.values() if out.owner is session]
        for out in orphans:
            out.owner = None
        if self.sessions:
            self._adopt(orphans)
        elif not handover:
            self.offline_since = time.time()
            self._hand_over_shared()
            self._cursor = None  # re-read stored entries from the start next time
            self.backlog = self._stored_not_inflight()
            self._drop_stored_pending()

    def _adopt(self, orphans: list[Out]) -> None:
        """Multiple sessions: what the leaving one had in flight goes to another (balance) or,
        as every session got its own copy, is dropped (fanout)."""
        if self.opts.deliver_mode == "balance":
            self._resend_inflight(self._pick_session())
            return
        for out in orphans:
            del self.inflight[out.pid]
            self._forget(out)

    def _hand_over_shared(self) -> None:
        """Offline now: shared-subscription messages go to another online member of their group,
        except QoS 2 ones already sent, which only this client may complete [MQTT-4.8.2-4/5]."""
        shared = [o for o in self.inflight.values() if o.group is not None and o.qos < 2]
        shared += [o for o in self.pending if o.group is not None]
        if not shared:
            return
        kept = set(map(id, self.node.shared.redistribute(self, shared)))
        for out in shared:
            if id(out) not in kept:
                self._forget(out)
                if out.pid and self.inflight.get(out.pid) is out:
                    del self.inflight[out.pid]
        self.pending = deque(o for o in self.pending if o.group is None or id(o) in kept)

    def _stored_not_inflight(self) -> int:
        if not self.opts.persistent:
            return 0
        inflight_stored = sum(1 for o in self.inflight.values() if o.seq is not None)
        return self.node.msg_store.count(self.key) - inflight_stored

    def _drop_stored_pending(self) -> None:
        # Stored entries will be read again from the store; keep only memory-only ones.
        if any(o.seq is not None for o in self.pending):
            self.pending = deque(o for o in self.pending if o.seq is None)

    @property
    def online(self) -> bool:
        return bool(self.sessions)

    # -- publishers ---------------------------------------------------------
    def enqueue(self, msg: Msg, qos: int, retain: bool, sub_ids: tuple = (), group: str | None = None) -> None:
        """Accept one message for this subscriber; never blocks the caller."""
        node = self.node
        node.metrics.counters["queue_message_in"] += 1
        if qos and self.opts.persistent and (self.backlog or not self.sessions):
            self._store(msg, qos, retain)
        elif not qos and self.pending and node.overload.active:
            self._drop(msg, "shed")  # overloaded: a consumer that is behind loses QoS 0 first
        elif self.sessions:
            self._push(Out(msg, qos, retain, sub_ids, None, group), self.opts.max_online_messages)
        elif qos or not self.opts.persistent:
            self._drop(msg, "queue_full" if self.opts.persistent else "not_persistent")
        else:
            self._push(Out(msg, qos, retain, sub_ids, None, group), self.opts.max_offline_messages)
        if self.sessions:
            self.wake()

    def wake(self) -> None:
        """Deliver what is pending when the running batch ends (or soon, outside of one)."""
        if not self._dirty:
            self._dirty = True
            self.node.dispatcher.mark(self)

    def _push(self, out: Out, limit: int) -> None:
        pending = self.pending
        if limit > 0 and len(pending) >= limit:  # -1: no limit
            if self.opts.queue_type == "fifo":
                self._drop(out.msg, "queue_full")
                return
            self._drop(pending.popleft().msg, "queue_full")
        pending.append(out)

    def _store(self, msg: Msg, qos: int, retain: bool) -> None:
        limit = self.opts.max_offline_messages
        if limit > 0 and self.backlog >= limit:  # -1: no limit
            if self.opts.queue_type == "fifo":
                self._drop(msg, "queue_full")
                return
            self._drop_oldest_stored()
        self.node.msg_store.append(self.key, msg, qos | (RETAIN_FLAG if retain else 0))
        self.backlog += 1
        if not self.sessions:
            self.node.hooks_event("on_offline_message", self.sid, qos, msg.topic, msg.payload, retain)

    def _drop_oldest_stored(self) -> None:
        oldest = self.node.msg_store.read(self.key, 1, after=self._cursor)
        if oldest:
            seq, msg, _flags = oldest[0]
            self.node.msg_store.remove(self.key, seq, msg.ref)
            self.backlog -= 1
            self._drop(msg, "queue_full")

    def _drop(self, msg: Msg, reason: str) -> None:
        self.dropped += 1
        counters = self.node.metrics.counters
        counters["queue_message_drop"] += 1
        if reason in _DROP_COUNTERS:
            counters[_DROP_COUNTERS[reason]] += 1
        self.node.hooks_event("on_message_drop", self.sid, (msg.topic, msg.payload, msg.qos, msg.retain),
                              reason)

    # -- delivery (in the greenlet of the batch that marked the queue) ------
    def _refill(self) -> None:
        """Move the next stored entries into memory, oldest first."""
        want = REFILL_BATCH - len(self.pending)
        if want <= 0:
            return
        rows = self.node.msg_store.read(self.key, want, after=self._cursor)
        for seq, msg, flags in rows:
            self.pending.append(Out(msg, flags & 3, bool(flags & RETAIN_FLAG), (), seq))
            self._cursor = seq
        self.backlog = max(0, self.backlog - len(rows)) if rows else 0

    def _pick_session(self) -> Session:
        if len(self.sessions) == 1 or self.opts.deliver_mode == "fanout":
            return self.sessions[0]
        self._rr = (self._rr + 1) % len(self.sessions)
        return self.sessions[self._rr]

    def deliver(self) -> None:
        if self._busy:  # an on_deliver hook blocked the running delivery: it goes round again
            self._busy = 2
            return
        self._busy = 1
        try:
            while self.sessions:
                self._deliver()
                if self._busy == 1:
                    return
                self._busy = 1
        finally:
            self._busy = 0

    def _deliver(self) -> None:
        sessions = self.sessions
        for s in sessions:
            if s.writing:
                return  # its writer greenlet wakes the queue once the socket took the backlog
        if self.backlog and len(self.pending) < REFILL_BATCH // 2:
            self._refill()
        pending = self.pending
        if not pending:
            return
        now = 0.0  # read at the first message that has an expiry
        lifo = self.opts.queue_type == "lifo"
        take = pending.pop if lifo else pending.popleft
        peek = -1 if lifo else 0
        fanout = len(sessions) == 1 or self.opts.deliver_mode == "fanout"
        by_session: dict[Session, list[bytes]] = {s: [] for s in sessions}
        room = {s: s.send_window() - s.inflight_count for s in sessions}
        full = {s for s, n in room.items() if n <= 0}  # sessions without in-flight room
        sent = expired = 0
        while pending:
            out = pending[peek]
            expiry = out.msg.expiry
            if expiry is not None and expiry <= (now or (now := time.time())):
                take()
                self._forget(out)
                expired += 1
                continue
            targets = sessions if fanout else [self._pick_session()]
            if out.qos and full and (fanout or targets[0] in full):
                break
            take()
            for s in targets:
                frame = self._frame_for(s, out)
                if frame is not None:
                    by_session[s].append(frame)
                    if out.qos:
                        room[s] -= 1
                        if not room[s]:
                            full.add(s)
            sent += 1
            if self.backlog and len(pending) < REFILL_BATCH // 4:
                self._refill()
        counters = self.node.metrics.counters
        counters["queue_message_out"] += sent
        counters["queue_message_expired"] += expired
        for s, frames in by_session.items():
            if frames:
                s.counters["mqtt_publish_sent"] += len(frames)
                s.send_frames(frames)

    def takes_frames(self, n: int) -> bool:
        """Whether `n` v3 QoS 0 frames may go straight to the sessions (write_frames), as the
        per-message path would send them: online v3 sessions with no backlog, nothing pending
        ahead of them, not over max_online_messages."""
        sessions = self.sessions
        if (not sessions or self.pending or self.backlog or self._busy
                or 0 < self.opts.max_online_messages < n
                or (len(sessions) > 1 and self.opts.deliver_mode != "fanout")):
            return False
        return all(s.proto_level < 5 and not s.writing and not s.closed for s in sessions)

    def write_frames(self, data: bytes, n: int) -> None:
        """Send `n` frames forwarded byte for byte by another worker; see takes_frames."""
        counters = self.node.metrics.counters
        counters["queue_message_in"] += n
        counters["queue_message_out"] += n
        counters["mqtt_publish_sent"] += n * len(self.sessions)
        for s in self.sessions:
            s.send(data)

    def _frame_for(self, session: Session, out: Out) -> bytes | None:
        """Encode `out` for `session`, taking a packet id for QoS 1/2; None: too large, dropped."""
        if not out.qos:
            frame = session.encode_publish(out, dup=False)
        else:
            if out.owner is not None:  # fanout to several sessions: each gets its own copy
                out = Out(out.msg, out.qos, out.retain, out.sub_ids, None, out.group)
            out.pid = self._alloc_pid()
            frame = session.encode_publish(out, dup=False)
            if frame is not None:
                out.owner = session
                out.sent_at = time.monotonic()
                self.inflight[out.pid] = out
                session.inflight_count += 1
            else:
                self._forget(out)
        if frame is None:
            self._drop(out.msg, "max_packet_size_exceeded")
        return frame

    def _alloc_pid(self) -> int:
        pid = self._next_pid
        while pid in self.inflight:
            pid = pid % 65535 + 1
        self._next_pid = pid % 65535 + 1
        return pid

    def _forget(self, out: Out) -> None:
        """Drop an entry for good (acked or expired): remove it from the store."""
        if out.seq is not None:
            self.node.msg_store.remove(self.key, out.seq, out.msg.ref)

    def _resend_inflight(self, session: Session) -> None:
        frames = []
        too_large = []
        for out in self.inflight.values():
            if out.owner is None:
                frame = session.encode_pubrel(out.pid) if out.released else session.encode_publish(out, dup=True)
                if frame is None:
                    too_large.append(out)
                    continue
                out.owner = session
                session.inflight_count += 1
                frames.append(frame)
        for out in too_large:  # this connection allows smaller packets than the last one
            del self.inflight[out.pid]
            self._forget(out)
            self._drop(out.msg, "max_packet_size_exceeded")
        if frames:
            session.send_frames(frames)

    def retry_v3(self, interval: float) -> None:
        """v3 only: resend QoS 1/2 messages unacked for retry_interval (v5 resends on reconnect)."""
        now = time.monotonic()
        due: dict[Session, list[bytes]] = {}
        for out in self.inflight.values():
            s = out.owner
            if s is not None and s.proto_level < 5 and now - out.sent_at >= interval:
                out.sent_at = now
                frame = s.encode_pubrel(out.pid) if out.released else s.encode_publish(out, dup=True)
                if frame is not None:
                    due.setdefault(s, []).append(frame)
        for s, frames in due.items():
            s.send_frames(frames)

    # -- acks from the subscriber's session greenlet ------------------------
    def acked(self, session: Session, pid: int, pubrec: bool = False) -> bool:
        """PUBACK/PUBCOMP (or PUBREC with pubrec=True) for packet id `pid`."""
        out = self.inflight.get(pid)
        if out is None or out.owner is not session:
            return False
        if pubrec:
            out.released = True
            return True
        del self.inflight[pid]
        session.inflight_count -= 1
        self._forget(out)
        self.wake()
        self.node.hooks_event("on_delivery_complete", session.username, self.sid, out.qos, out.msg.topic,
                              out.msg.payload, out.retain)
        return True

    # -- teardown -----------------------------------------------------------
    def persist_memory(self) -> None:
        """On shutdown: write QoS 1/2 entries held only in memory to the store, in order."""
        if not self.opts.persistent:
            return
        for out in [*self.inflight.values(), *self.pending]:
            if out.qos and out.seq is None:
                self.node.msg_store.append(self.key, out.msg, out.qos | (RETAIN_FLAG if out.retain else 0))

    def purge(self) -> None:
        """Forget every message (clean start or session expiry)."""
        self.pending.clear()
        self.inflight.clear()
        self.awaiting_rel.clear()
        if self.opts.persistent:
            self.node.msg_store.delete_queue(self.key)
        self.backlog = 0
        self._cursor = None
        if self.expiry_timer is not None:
            self.expiry_timer.kill(block=False)
            self.expiry_timer = None

    def shed_qos0(self, limit: int | None) -> int:
        """Drop up to `limit` (None: all) QoS 0 messages waiting in memory; returns how many."""
        keep: deque[Out] = deque()
        shed = 0
        for out in self.pending:
            if not out.qos and (limit is None or shed < limit):
                self._drop(out.msg, "shed")
                shed += 1
            else:
                keep.append(out)
        self.pending = keep
        return shed

    def size(self) -> int:
        return len(self.pending) + len(self.inflight) + self.backlog


class Dispatcher:
    """The node's queues with messages to deliver, and the v3 resend timer.

    A session delivers every queue its batch marked at the end of that batch
    (`flush`): one write per subscriber per batch, from the publisher's
    greenlet, no wake-up of another. What is marked outside of a batch (wills,
    retained messages, timers, other workers) is flushed by a greenlet started
    from the next turn of the loop. `owner` is the greenlet running a batch
    whose own flush follows (a session's batch of one packet, or any batch
    handled in the hub, which cannot switch away): its marks schedule nothing.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.dirty: list[Queue] = []
        self.owner: greenlet | None = None
        self._scheduled = False
        self._retry: gevent.Greenlet | None = None

    def mark(self, queue: Queue) -> None:
        self.dirty.append(queue)
        if not self._scheduled and self.owner is not getcurrent():
            self._scheduled = True
            get_hub().loop.run_callback(self._later)

    def schedule(self) -> None:
        """Flush from the next turn of the loop."""
        if not self._scheduled:
            self._scheduled = True
            get_hub().loop.run_callback(self._later)

    def _later(self) -> None:
        self._scheduled = False
        if self.dirty:
            gevent.spawn(self.flush)  # delivery may run hooks that block: not in the hub

    def flush(self) -> None:
        while self.dirty:
            dirty, self.dirty = self.dirty, []
            for queue in dirty:
                queue._dirty = False
                if queue.pending or queue.backlog:  # else nothing to deliver (most wakes by an ack)
                    queue.deliver()

    def start(self) -> None:
        self._retry = gevent.spawn(self._resend)

    def stop(self) -> None:
        if self._retry is not None:
            self._retry.kill(block=False)
            self._retry = None

    def _resend(self) -> None:
        """v3: resend QoS 1/2 deliveries unacked for retry_interval (v5 resends on reconnect only)."""
        while True:
            gevent.sleep(RETRY_TICK)
            interval = self.node.config["retry_interval"]
            if interval:
                for queue in [q for q in self.node.registry.queues.values() if q.inflight and q.sessions]:
                    queue.retry_v3(interval)
