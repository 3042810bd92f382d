"""One session per client id across the cluster, and the queue moving with its client.

A CONNECT is registered by the endpoint that will serve it (E: the worker of
this node that owns the client id). Before the session starts, E asks the
client id's coordinator C (the ring's owner node for the id, and on it the
worker owning the id) to register it. C handles one registration per client
id at a time (VerneMQ's `coordinate_registrations`): it asks the owning
worker X of every other node to take the session off (`take`). X disconnects
the session there as a takeover does (the right reason code, the will as the
spec says) and, unless the new connection asks for a clean start, sends E the
session's subscriptions and every message its queue holds, oldest first
(T_MOVE, on X's ordered stream to E), then answers C; C answers E with the
endpoints that moved something. E installs that state before the client
sees CONNACK (session present = 1), then tells X (T_MOVED) that it routes
the subscriptions itself; until then X forwards to E whatever is still
routed to X for the client (T_DELIVER), so nothing published meanwhile is
lost. Two CONNECTs racing on two nodes are serialised at C: the later one
takes the session from the earlier, so exactly one survives.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from vmqpy.broker.message import Msg
from vmqpy.cluster import links as iw
from vmqpy.cluster.accept import owner
from vmqpy.cluster.metadata import MEMBERS
from vmqpy.cluster.ring import Ring

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

log = logging.getLogger(__name__)

CALL_TIMEOUT = 5.0


def msg_fields(msg: Msg) -> tuple:
    return (msg.topic, msg.payload, msg.qos, msg.retain, msg.properties, msg.mountpoint, msg.expiry, msg.sender)


def msg_from(fields) -> Msg:
    topic, payload, qos, retain, props, mountpoint, expiry, sender = fields
    return Msg(topic, payload, qos, retain, props, mountpoint, expiry, tuple(sender) if sender else None)


@functools.lru_cache(maxsize=8)
def _ring(size: int, names: tuple[str, ...]) -> Ring:
    # A few member sets are in use at once: all members, all but this node (offline_replica), all
    # that stay (a leave); the claim is computed once for each.
    return Ring(size, names)


class Registrations:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        self._seq = 0
        self._calls: dict[int, AsyncResult] = {}
        self._locks: dict[tuple[str, str], Semaphore] = {}
        self._arrived: dict[tuple[str, str], tuple[dict, Event]] = {}  # T_MOVE received, by sid
        self._handing: dict[tuple[str, str], Event] = {}  # leaving: moved, its T_MOVED not back yet

    # -- E: the endpoint registering a CONNECT ---------------------------------
    def take_over(self, sid: tuple[str, str], clean_start: bool) -> dict | None:
        """Register `sid` here for the cluster; the session state another node moved to us, or None."""
        members = self.members()
        if len(members) < 2:
            return None
        coordinator = self.endpoint_for(members, sid)
        started = time.monotonic()
        try:
            moved_from = self._ask(coordinator, "reg", (list(sid), self.rt.me, clean_start))
        except TimeoutError:
            log.warning("registration of %s: coordinator %s did not answer; registered here only", sid,
                        coordinator)
            return None
        if not moved_from or clean_start:
            return None
        entry = self._arrived.setdefault(sid, ({}, Event()))
        if not entry[1].wait(max(0.0, CALL_TIMEOUT - (time.monotonic() - started))):
            log.error("registration of %s: the session state from %s did not arrive", sid, moved_from)
        state = self._arrived.pop(sid, ({}, None))[0] or None
        if state is not None:
            state["installed"] = lambda: self._moved(sid, moved_from)
        return state

    def _moved(self, sid: tuple[str, str], sources: list[str]) -> None:
        """Our subscriptions for `sid` are routed everywhere (registry.subscribe waited for the
        barrier): the places it moved from may stop routing and forwarding."""
        for pid in sources:
            peer = self.rt.links.peers.get(pid)
            if peer is not None:
                peer.send((iw.T_MOVED, list(sid)))

    def arrived(self, sender: str, sid: tuple[str, str], subs: dict, msgs: list, adopt: bool = False,
                expiry: float | None = None) -> None:
        """T_MOVE: the state of a session that moves here (for a client connecting, or to adopt)."""
        state = {"subs": dict(subs), "msgs": [(msg_from(m), q, r) for m, q, r in msgs]}
        if adopt:
            gevent.spawn(self.adopted, sid, state, expiry, sender)
            return
        entry = self._arrived.setdefault(sid, ({}, Event()))
        entry[0].update(state)
        entry[1].set()

    def delivered(self, sid: tuple[str, str], fields: tuple, qos: int, retain: bool) -> None:
        """T_DELIVER: a message the session's old node still routed to it, after its state."""
        msg = msg_from(fields)
        entry = self._arrived.get(sid)
        if entry is not None and entry[1].is_set():
            entry[0]["msgs"].append((msg, qos, retain))  # the session is not registered yet
            return
        queue = self.rt.node.registry.queue_for(sid)
        if queue is not None:
            queue.enqueue(msg, qos, retain)

    # -- C: the coordinator --------------------------------------------------------
    def _register(self, sid: tuple[str, str], target: str, clean_start: bool) -> list[str]:
        entry = self._locks.get(sid)
        if entry is None:
            entry = self._locks[sid] = [Semaphore(), 0]
        entry[1] += 1  # callers holding or waiting for this id's lock
        try:
            with entry[0]:
                return self._take_everywhere(sid, target, clean_start)
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._locks[sid]

    def _take_everywhere(self, sid: tuple[str, str], target: str, clean_start: bool) -> list[str]:
        """Ask the owning worker of every node but the target's to give the session up."""
        members = self.members()
        target_node = target.rpartition("/")[0]
        others = [self.owner_on(name, info, sid) for name, info in members.items() if name != target_node]
        jobs = [gevent.spawn(self._ask_quietly, pid, "take", (list(sid), target, clean_start)) for pid in others]
        gevent.joinall(jobs)
        moved = []
        for pid, job in zip(others, jobs, strict=True):
            if isinstance(job.value, TimeoutError):
                log.warning("registration of %s: %s did not answer (%s)", sid, pid, job.value)
            elif job.value:
                moved.append(pid)
        return moved

    def _ask_quietly(self, pid: str, op: str, args: tuple, timeout: float = CALL_TIMEOUT) -> Any:
        """_ask for a greenlet of its own: a TimeoutError is its value, not an unhandled error."""
        try:
            return self._ask(pid, op, args, timeout)
        except TimeoutError as e:
            return e

    def ask_everyone(self, op: str, args: tuple, timeout: float) -> dict[str, Any]:
        """Run `op` on every endpoint we are linked to and on this one, at once: answers by endpoint
        (a TimeoutError for one that did not answer)."""
        pids = [self.rt.me, *(pid for pid, peer in self.rt.links.peers.items() if peer.up)]
        jobs = [gevent.spawn(self._ask_quietly, pid, op, args, timeout) for pid in pids]
        gevent.joinall(jobs)
        return {pid: job.value for pid, job in zip(pids, jobs, strict=True)}

    # -- X: an endpoint that may hold the session -----------------------------------
    def _take(self, sid: tuple[str, str], target: str, clean_start: bool, adopt: bool = False) -> int | None:
        """Hand `sid` to `target`: the number of messages moved, None if nothing was here. `adopt`:
        no client waits there (this node leaves): the target keeps the session offline."""
        peer = self.rt.links.peers.get(target)
        registry = self.rt.node.registry

        def forward(msg: Msg, qos: int, retain: bool) -> None:
            if peer is not None:
                peer.send((iw.T_DELIVER, list(sid), msg_fields(msg), qos, retain))

        expiry = registry.sessions.get(sid, {}).get("expiry")
        state = registry.hand_off(sid, clean_start, forward)
        if state is None:
            return None
        if peer is None:
            log.error("session %s taken over by unknown endpoint %s: its state is lost", sid, target)
            registry.handed_off(sid)
            return None
        msgs = [(msg_fields(m), q, r) for m, q, r in state["msgs"]]
        peer.send((iw.T_MOVE, list(sid), state["subs"], msgs, adopt, expiry))
        log.info("session %s moved to %s with %d messages", sid, target, len(msgs))
        gevent.spawn_later(CALL_TIMEOUT * 6, registry.handed_off, sid)  # T_MOVED lost: stop anyway
        return len(msgs)

    # -- a node leaving with its sessions -------------------------------------------
    def migrate_all(self, interval: float, timeout: float) -> tuple[int, int, int]:
        """Move every session kept here (offline messages included) to the nodes that stay, each to
        the worker of the node the ring picks for it: (sessions moved, messages moved, left here)."""
        registry = self.rt.node.registry
        members = {n: i for n, i in self.members().items() if n != self.rt.node.name and self._reachable(n)}
        if not members:
            return 0, 0, len(registry.sessions)
        todo = sorted(registry.sessions)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        sessions = messages = 0
        for sid in todo:
            if time.monotonic() > deadline:
                break
            moved = self._take(sid, self.endpoint_for(members, sid), False, adopt=True)
            if moved is not None:
                sessions += 1
                messages += moved
                self._handing[sid] = Event()
            self.rt.links.flush()
            gevent.sleep(0)  # let the links write what was queued
            if time.monotonic() - last_report >= interval:
                last_report = time.monotonic()
                log.info("leaving the cluster: %d of %d sessions moved (%d messages)", sessions, len(todo), messages)
        for sid, done in list(self._handing.items()):  # until each target has it: a client back there finds it
            if not done.wait(max(0.0, deadline - time.monotonic())):
                log.error("leaving the cluster: no confirmation that session %s arrived", sid)
        self._handing.clear()
        left = len(registry.sessions)
        log.info("leaving the cluster: %d sessions moved (%d messages), %d left here", sessions, messages, left)
        return sessions, messages, left

    def handed_off(self, sid: tuple[str, str]) -> None:
        """T_MOVED: the session's new place routes it; stop routing and forwarding here."""
        self.rt.node.registry.handed_off(sid)
        done = self._handing.get(sid)
        if done is not None:
            done.set()

    def _reachable(self, name: str) -> bool:
        return any(p.up for pid, p in self.rt.links.peers.items() if pid.startswith(f"{name}/"))

    def adopted(self, sid: tuple[str, str], state: dict, expiry: float | None, sender: str) -> None:
        """T_MOVE with no client waiting: keep the session offline here, then stop the sender's forwarding."""
        self.rt.node.registry.adopt(sid, state, expiry)
        peer = self.rt.links.peers.get(sender)
        if peer is not None:
            peer.send((iw.T_MOVED, list(sid)))

    # -- calls between endpoints ----------------------------------------------------
    def _ask(self, pid: str, op: str, args: tuple, timeout: float = CALL_TIMEOUT) -> Any:
        """Run `op` on endpoint `pid` (here if it is us) and return its answer; TimeoutError if none."""
        if pid == self.rt.me:
            return self._run(op, args)
        peer = self.rt.links.peers.get(pid)
        if peer is not None and not peer.up and not peer.dialed.is_set():
            peer.dialed.wait(timeout)  # linked a moment ago (a node joining): its first dial is under way
        if peer is None or not peer.up:
            raise TimeoutError(f"{pid} is not linked")
        self._seq += 1
        seq = self._seq
        result = self._calls[seq] = AsyncResult()
        peer.send((iw.T_CALL, seq, op, args))
        self.rt.links.flush()
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout as e:
            raise TimeoutError(f"{pid} did not answer {op}") from e
        finally:
            self._calls.pop(seq, None)

    # -- after a netsplit: one session per client id again ----------------------------
    def reconcile(self, node: str) -> None:
        """`node` is reachable again: tell its endpoints which sessions are online here; each side
        keeps, per client id, the session registered last and disconnects the other (0x8E)."""
        online = [(list(s.sid), s.registered_at) for s in self.rt.node.sessions if s.connected and not s.closed]
        prefix = f"{node}/"
        for pid, peer in self.rt.links.peers.items():
            if pid.startswith(prefix):
                peer.send((iw.T_CALL, 0, "dedupe", (online,)))

    def _dedupe(self, sender: str, theirs: list) -> int:
        mine = {s.sid: s for s in self.rt.node.sessions if s.connected and not s.closed}
        kicked = 0
        for sid, registered_at in theirs:
            session = mine.get(tuple(sid))
            if session is not None and (session.registered_at, self.rt.me) < (float(registered_at), sender):
                log.warning("session %s also registered on %s during the netsplit: the later one stays",
                            session.sid, sender)
                session.taken_over(False)
                kicked += 1
        return kicked

    def _run(self, op: str, args: tuple, sender: str | None = None) -> Any:
        if op == "dedupe":
            return self._dedupe(str(sender), list(args[0]))
        if op == "departed":
            return self.rt.sessions.departure(str(args[0])).get()
        if op == "admin":  # a vmq-admin command another node runs on every endpoint (admin/cluster_wide.py)
            return self.rt._command([str(a) for a in args[0]])
        sid, target, clean_start = (tuple(args[0]), str(args[1]), bool(args[2]))
        if op == "reg":
            return self._register(sid, target, clean_start)
        if op == "take":
            return self._take(sid, target, clean_start) is not None
        raise ValueError(f"unknown call {op!r}")

    def called(self, sender: str, seq: int, op: str, args: tuple) -> None:
        """T_CALL from `sender`: run it in a greenlet of its own (it may wait on other calls)."""
        gevent.spawn(self._answer, sender, seq, op, args)

    def _answer(self, sender: str, seq: int, op: str, args: tuple) -> None:
        try:
            value = self._run(op, args, sender)
        except (TypeError, ValueError, IndexError) as e:
            log.error("bad %s call from %s: %s", op, sender, e)
            value = None
        peer = self.rt.links.peers.get(sender)
        if peer is not None:
            peer.send((iw.T_REPLY, seq, value))
            self.rt.links.flush()

    def replied(self, seq: int, value: Any) -> None:
        result = self._calls.get(seq)
        if result is not None:
            result.set(value)

    # -- where a client id is coordinated ---------------------------------------------
    def members(self) -> dict[str, dict]:
        return {name: info for (name,), info in self.rt.members.replica.fold(MEMBERS)}

    def endpoint_for(self, members: dict[str, dict], sid: tuple[str, str]) -> str:
        """The endpoint the ring over `members` (name -> member record) picks for client id `sid`."""
        name = _ring(self.rt.node.config["ring_creation_size"], tuple(sorted(members))).owner(f"{sid[0]}\x00{sid[1]}")
        return self.owner_on(name, members[name], sid)

    def owner_on(self, name: str, info: dict, sid: tuple[str, str]) -> str:
        """The worker of node `name` that owns client id `sid` (the one its connections go to)."""
        workers = max(1, int(info.get("workers", 1)))
        return f"{name}/{owner(sid[0], sid[1], workers)}"
