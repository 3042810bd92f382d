"""One worker's view of the others (`node.cluster` when nr_of_workers > 1; docs/workers.md).

- Subscriptions: every worker tells the others which (mountpoint, filter) it
  has local subscribers for (once per filter, not per subscriber, as DESIGN
  §5 does for nodes). `remote` is a Router whose "subscribers" are workers.
- Publishes: delivered locally by Node.publish, then `route` forwards one copy
  per other worker with matches on that worker's ordered stream. The receiver
  routes to its local subscribers only (`inbound` is not None).
- Shared subscriptions: members are grouped across workers; one target per
  message and group, here or on one worker that has members, online members
  first (cluster/shared.py).
- Persistent sessions and their offline messages outlive their node
  (cluster/sessions.py, cluster/offline_replica.py).
- Retained messages: every worker keeps the whole retained trie; sets and
  clears are broadcast; only the worker owning the topic (by hash) persists
  it, and sends what it persists to every worker that (re)connects.
- Connections: see cluster/accept.py; max_connections counts the node's
  connections (cluster/limits.py).
- Operations: `stats` answers worker 0's T_STATS RPC (cluster/ops.py).
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from typing import TYPE_CHECKING, Any

import gevent
from gevent import ssl
from gevent.event import Event

from vmqpy.broker import tls
from vmqpy.broker.listeners import ListenerError, bind
from vmqpy.broker.message import Msg
from vmqpy.broker.preread import PrereadSocket
from vmqpy.broker.registry import split_filter
from vmqpy.broker.router import Router, Subscription
from vmqpy.cluster import links as iw
from vmqpy.cluster.accept import owner, read_connect
from vmqpy.cluster.membership import Membership, cluster_listener
from vmqpy.cluster.metadata import ClusterMetadata
from vmqpy.cluster.offline_replica import Copies, ReplicatingStore
from vmqpy.cluster.registration import Registrations
from vmqpy.cluster.sessions import ClusterSessions
from vmqpy.cluster.shared import OFFLINE, ClusterShared, RemoteGroups
from vmqpy.mqtt.codec import Decoder

if TYPE_CHECKING:
    import socket

    from vmqpy.broker.listeners import Listener
    from vmqpy.broker.node import Node
    from vmqpy.cluster.limits import ConnectionTable
    from vmqpy.cluster.subscribe_clock import SubscribeClock

log = logging.getLogger(__name__)

NO_GROUPS: tuple = ()
HANDOFF_WAIT = 5.0
_ANY = Subscription()


class WorkerRuntime:
    def __init__(self, node: Node, index: int, count: int, listen_fds: dict[str, int],
                 link_paths: list[str], connections: ConnectionTable | None = None,
                 clock: SubscribeClock | None = None) -> None:
        self.node = node
        self.index = index
        self.count = count
        self.listen_fds = listen_fds
        self.connections = connections                    # the node's connections per listener
        self.clock = clock                                # SUBSCRIBEs the other workers read
        self._worker_index = {f"{node.name}/{i}": i for i in range(count)}
        self._recounting: Event | None = None
        self.me = f"{node.name}/{index}"
        self.links = iw.Links(self.me, link_paths, index, self._dispatch, self._sync_records, self._rpc,
                              self._batch_done, node.config["distributed_cookie"], node.metrics.counters)
        node.metrics.gauge("cluster_link_queue", self.links.queued)
        self.local: dict[tuple[str, str], int] = {}      # (mountpoint, filter) -> local subscribers
        self.remote = Router()                            # subscriber ids: (mountpoint, endpoint)
        self.remote_filters: dict[str, set[tuple[str, str]]] = {}
        self._targets: dict[tuple[str, str], tuple[tuple[str, ...], RemoteGroups]] = {}
        self.shared = ClusterShared(self)
        self.meta = ClusterMetadata(self)
        self.members = Membership(self)
        self.registrations = Registrations(self)
        self.sessions = ClusterSessions(self)
        self.copies = Copies(self)  # of other nodes' offline messages (offline_message_replica)
        if node.config["offline_message_replica"]:
            node.msg_store = ReplicatingStore(self, node.msg_store)
        self.take_over = self.registrations.take_over  # connect.finish's seam
        self._heartbeats: gevent.Greenlet | None = None
        self.client_tls = None  # with a listener.vmqs: the context this endpoint dials other nodes with
        for sid, table in node.registry.subscriptions.items():
            for filt in table:
                key = (sid[0], filt)
                self.local[key] = self.local.get(key, 0) + 1

    # -- lifecycle ----------------------------------------------------------
    def start_links(self) -> None:
        self.meta.start()
        self.sessions.start()
        self.links.listen()
        server = self._cluster_socket()
        if server is not None:
            self.links.listen_tcp(server)
        self.links.on_peer_up = self.members.endpoint_up
        self.links.on_peer_down = self.members.endpoint_down
        self.links.connect()
        self.members.start()
        timeout = self.node.config["cluster_heartbeat_timeout"] / 1000
        if timeout:
            self._heartbeats = gevent.spawn(self.links.heartbeats, timeout)

    def _cluster_socket(self) -> socket.socket | None:
        """The cluster listener: the parent's socket (shared by the workers), or bound here."""
        from gevent import socket as gsocket

        spec = cluster_listener(self.node.config)
        if spec is None:
            return None
        if spec.kind == "vmqs":
            self.links.tls, self.client_tls = tls_contexts(spec.opts)
        fd = self.listen_fds.get(f"{spec.kind}.{spec.name}")
        if fd is not None:
            return gsocket.socket(fileno=os.dup(fd))
        sock = bind(spec, 128)
        log.info("cluster listener %s.%s on %s:%s started", spec.kind, spec.name, spec.host, spec.port)
        return sock

    def wait_synced(self, timeout: float) -> bool:
        return self.links.synced.wait(timeout)

    def stop(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.kill(block=False)
        self.meta.stop()
        self.sessions.stop()
        self.links.flush()
        self.links.stop()
        self.copies.close()

    @property
    def split(self) -> set[str]:
        """Member nodes that cannot be reached now (the allow_*_during_netsplit keys apply)."""
        return self.members.split

    @property
    def linked(self) -> bool:
        """Other endpoints exist: a batch's forwards may have to wait for them (no hub path)."""
        return bool(self.links.peers)

    @property
    def runs_operations(self) -> bool:
        """HTTP listeners, $SYS and Graphite run in worker 0 only (they would share a port)."""
        return self.index == 0

    # -- accepting (Listeners seams) ------------------------------------------
    def listen_socket(self, listener: Listener) -> socket.socket | None:
        """A socket on the listening fd the parent bound for `listener`, or None (bind as usual)."""
        from gevent import socket as gsocket

        fd = self.listen_fds.get(f"{listener.kind}.{listener.name}")
        return None if fd is None else gsocket.socket(fileno=os.dup(fd))

    def adopt(self, listener: Listener, sock: socket.socket, addr) -> socket.socket | None:
        """The socket to serve here, or None when the worker owning its client id took it or
        the node has max_connections on this listener."""
        if isinstance(sock, PrereadSocket) or listener.kind != "tcp":
            # handed over to us, or TLS (its state cannot move): served where accepted
            return self._admit(listener, sock, addr)
        data, client_id = read_connect(sock, self.node.config["max_message_size"])
        mountpoint = listener.opts.get("mountpoint", "") or ""
        target = owner(mountpoint, client_id, self.count) if client_id else self.index
        if target == self.index:
            return self._admit(listener, PrereadSocket.wrap(sock, data), addr)
        peer = self.links.peers[self.links.worker_id(target)]
        if not peer.up and not peer.up_event.wait(HANDOFF_WAIT):
            sock.close()  # its owner is restarting: the client reconnects
            return None
        # detach: the server closes the accepted socket object when we return
        peer.handoff((iw.T_HANDOFF, f"{listener.kind}.{listener.name}", tuple(addr[:2]), data), sock.detach())
        return None

    def _admit(self, listener: Listener, sock: socket.socket, addr) -> socket.socket | None:
        """`sock` if the node serves fewer than the listener's max_connections, counted in our row
        of the shared table at once (cluster/limits.py); else None, the connection closed."""
        limit = listener.opts.get("max_connections", 0)
        table = self.connections
        slot = table.slot(f"{listener.kind}.{listener.name}") if table is not None and limit else None
        if slot is None or limit == math.inf:
            return sock  # no limit, or a listener started at runtime: counted per worker (Listeners)
        if listener.connections + table.others(self.index, slot) >= limit:
            self.recount()  # the other rows may still count connections closed since
            if listener.connections + table.others(self.index, slot) >= limit:
                log.warning("listener %s.%s: max_connections %s reached on the node, refusing %s",
                            listener.kind, listener.name, limit, addr)
                sock.close()
                return None
        table.set(self.index, slot, listener.connections + 1)  # Listeners counts it as we return
        return sock

    def recount(self) -> None:
        """Have every worker rewrite its row of the connection table; concurrent callers share one."""
        pending = self._recounting
        if pending is not None:
            pending.wait()
            return
        self._recounting = done = Event()
        try:
            self.links.broadcast((iw.T_RECOUNT,), local_only=True)
            # each worker handles T_RECOUNT before answering the barrier's ping
            self.links.barrier(peers={k for k in self.links.local if self.links.peers[k].up})
        finally:
            self._recounting = None
            done.set()

    def _write_counts(self) -> None:
        table = self.connections
        if table is None:
            return
        listeners = self.node.listeners.all
        for key, slot in table.slots.items():
            listener = listeners.get(key)
            table.set(self.index, slot, listener.connections if listener is not None else 0)

    def _handed_over(self, key: str, addr: tuple, data: bytes, fd: int) -> None:
        listeners = self.node.listeners.all
        listener = listeners.get(key) or next(iter(listeners.values()))
        sock = PrereadSocket.adopt(fd, data)
        gevent.spawn(self.node.listeners._accept, listener, sock, addr)

    # -- subscriptions (Registry and Session seams) ----------------------------
    def subscribing(self) -> None:
        """A SUBSCRIBE is being handled here (subscribe_clock.py)."""
        if self.clock is not None:
            self.clock.tick()

    def subscribe_done(self) -> None:
        """The SUBSCRIBE is handled: the other workers hold what it subscribed once this arrives."""
        if self.clock is not None:
            self.links.broadcast((iw.T_CLOCK, self.clock.now()), local_only=True)

    def subscribed(self, mountpoint: str, filt: str, new: bool) -> None:
        """A local subscription was added (new) or replaced; returns once every worker knows it."""
        if new:
            key = (mountpoint, filt)
            n = self.local.get(key, 0)
            self.local[key] = n + 1
            if not n:
                self.links.broadcast((iw.T_SUB, mountpoint, filt))
        self.shared.check(mountpoint, filt)
        self.links.barrier()

    def session_changed(self, sid: tuple[str, str]) -> None:
        """A persistent session here was made, ended or changed (the replicated entry follows)."""
        self.sessions.changed(sid)

    def presence(self, sid: tuple[str, str]) -> None:
        """`sid` came online or went offline: the shared groups it is a member of may care."""
        self.shared.presence(sid)

    def unsubscribed(self, mountpoint: str, filt: str) -> None:
        key = (mountpoint, filt)
        n = self.local.get(key, 0) - 1
        if n > 0:
            self.local[key] = n
            self.shared.check(mountpoint, filt)
        elif n == 0:
            del self.local[key]
            self.shared.removed(mountpoint, filt)
            self.links.broadcast((iw.T_UNSUB, mountpoint, filt))

    def _remote_add(self, k: str, mountpoint: str, filt: str) -> None:
        self.remote_filters.setdefault(k, set()).add((mountpoint, filt))
        plain, group = split_filter(filt)
        self.remote.add((mountpoint, k), plain, _ANY if group is None else OFFLINE, group)
        self._targets.clear()

    def _remote_remove(self, k: str, mountpoint: str, filt: str) -> None:
        self.remote_filters.get(k, set()).discard((mountpoint, filt))
        plain, group = split_filter(filt)
        self.remote.remove((mountpoint, k), plain, group)
        self._targets.clear()

    def targets_changed(self) -> None:
        self._targets.clear()

    def forget_remote(self, k: str) -> None:
        """Endpoint k sent its full state (it (re)started) or left: what it said before no longer holds."""
        for mountpoint, filt in list(self.remote_filters.get(k, ())):
            self._remote_remove(k, mountpoint, filt)

    # -- routing (Node.publish seam) ------------------------------------------
    def route(self, msg: Msg, groups: list, inbound: tuple | None) -> int:
        """Forward `msg` to the other workers with matches; deliver shared groups. Local deliveries."""
        if inbound is not None:
            return self._deliver_chosen(msg, groups, inbound)
        targets = self._targets.get((msg.mountpoint, msg.topic))  # the cache hit inline: every publish
        plain, remote_groups = targets if targets is not None else self.targets(msg.mountpoint, msg.topic)
        n = 0
        chosen: dict[str, list[str]] = {}
        if groups or remote_groups:
            n = self.shared.pick(msg, _merge_groups(groups), remote_groups, chosen)
        clock = self.clock
        if clock is not None:
            ahead = clock.ahead()
            if ahead:  # a SUBSCRIBE read there may match: that worker decides (subscribe_clock.py)
                plain = tuple(sorted({*plain, *(f"{self.node.name}/{k}" for k in ahead)}))
        if not plain and not chosen:
            return n
        peers = self.links.peers
        record = None
        sent = 0
        frame = msg.received
        qos_sent = self.links.qos_sent if msg.qos else None  # the publisher's ack waits for confirm()
        for k in (plain if not chosen else sorted({*plain, *chosen})):
            peer = peers.get(k)  # down (restarting): QoS 1/2 records wait for it (Peer.send)
            if peer is None:
                continue  # a joining node's subscriptions arrive before its member record
            if qos_sent is not None:
                qos_sent[k] += 1
            names = chosen.get(k)
            if names is None and frame is not None:
                peer.send_frame(msg.mountpoint, msg.topic, msg.sender, frame)
            elif names is None:
                if record is None:
                    record = iw.pub_record(msg, NO_GROUPS)
                peer.send(record)
            else:
                peer.send(iw.pub_record(msg, tuple(names)))
            sent += 1
        self.node.metrics.counters["router_matches_remote"] += sent
        return n

    def targets(self, mountpoint: str, topic: str) -> tuple[tuple[str, ...], RemoteGroups]:
        """The endpoints with plain subscriptions matching the topic, and the shared groups' endpoints."""
        key = (mountpoint, topic)
        targets = self._targets.get(key)
        if targets is None:
            deliveries, groups = self.remote.match(mountpoint, topic)
            by_group: RemoteGroups = {}
            for name, members in groups:
                endpoints = by_group.setdefault(name, {})
                for sid, sub in members.items():
                    endpoints[sid[1]] = endpoints.get(sid[1], False) or sub is not OFFLINE
            targets = self._targets[key] = (tuple(sorted({d.sid[1] for d in deliveries})), by_group)
        return targets

    def _deliver_chosen(self, msg: Msg, groups: list, chosen: tuple) -> int:
        if not chosen:
            return 0
        n = 0
        for name, members in _merge_groups(groups).items():
            if name in chosen:
                n += self.node.shared.deliver(msg, name, members)
        return n

    def _sync_records(self, k: str) -> list:
        """What endpoint k learns when our stream to it (re)connects: our filters, our metadata."""
        clock = [(iw.T_CLOCK, self.clock.now())] if self.clock is not None and k in self.links.local else []
        return [(iw.T_SUBS, list(self.local)), *clock, *self.shared.sync_records(), *self.meta.sync_records(),
                (iw.T_SYNCED,)]

    # -- receiving --------------------------------------------------------------
    def _dispatch(self, k: str, records: list, fds: deque) -> None:
        node = self.node
        publish = node.publish
        for rec in records:
            kind = rec[0]
            if kind == iw.T_PUB:
                _, topic, payload, qos, retain, props, mountpoint, expiry, sender, names = rec
                publish(Msg(topic, payload, qos, retain, props, mountpoint, expiry, sender), names)
            elif kind == iw.T_FRAMES:
                self._deliver_frames(*rec[1:])
            elif kind == iw.T_SUB:
                self._remote_add(k, rec[1], rec[2])
            elif kind == iw.T_UNSUB:
                self._remote_remove(k, rec[1], rec[2])
            elif kind == iw.T_SUBS:
                self.forget_remote(k)
                for mountpoint, filt in rec[1]:
                    self._remote_add(k, mountpoint, filt)
            elif kind == iw.T_REPLICA:
                self.copies.received(k, rec)
            elif kind == iw.T_CLOCK:
                if self.clock is not None:
                    self.clock.seen_from(self._worker_index[k], rec[1])
            elif kind == iw.T_SYNCED:
                self.members.synced.add(k)
            elif kind == iw.T_SHARED:
                self.shared.received(k, rec[1], rec[2], bool(rec[3]))
            elif kind == iw.T_HANDOFF:
                self._handed_over(rec[1], rec[2], rec[3], fds.popleft())
            elif kind == iw.T_RECOUNT:
                self._write_counts()
            elif kind == iw.T_META:
                self.meta.received(k, rec[1])
            elif kind == iw.T_LINK:
                self.links.adopt_tcp(fds.popleft(), rec[1], rec[2])
            elif kind == iw.T_CALL:
                self.registrations.called(k, rec[1], rec[2], rec[3])
            elif kind == iw.T_REPLY:
                self.registrations.replied(rec[1], rec[2])
            elif kind == iw.T_MOVE:
                self.registrations.arrived(k, tuple(rec[1]), *rec[2:])
            elif kind == iw.T_DELIVER:
                self.registrations.delivered(tuple(rec[1]), rec[2], rec[3], rec[4])
            elif kind == iw.T_MOVED:
                self.registrations.handed_off(tuple(rec[1]))

    def _deliver_frames(self, mountpoint: str, topic: str, sender: tuple, data: bytes, n: int) -> None:
        """A T_FRAMES run: `n` v3 QoS 0 PUBLISH frames of one publisher and topic. Written as they
        are to every matching subscriber when nothing waits ahead of them (the fan-in fast path:
        no per-message work here); otherwise routed one message at a time, as a T_PUB would be."""
        node = self.node
        deliveries, _ = node.router.match(mountpoint, topic)  # groups: a run carries none chosen for us
        queues = []
        if not node.hooks.active("on_deliver"):
            upgrade = node.config["upgrade_outgoing_qos"]
            get = node.registry.queues.get
            for d in deliveries:
                queue = get(d.sid)
                if queue is None or d.sid == sender or (d.qos and upgrade) or not queue.takes_frames(n):
                    break
                queues.append(queue)
        if len(queues) == len(deliveries):
            for queue in queues:
                queue.write_frames(data, n)
            node.metrics.counters["router_matches_local"] += n * len(queues)
            return
        publish = node.publish
        for p in Decoder(4, server=False).feed(data):
            publish(Msg(topic, p.payload, 0, False, None, mountpoint, None, sender, None, p.frame), NO_GROUPS)

    def _batch_done(self) -> None:
        store = self.node.msg_store
        if store.pending():
            store.flush()
        self.copies.flush()

    def _rpc(self, record: tuple) -> Any:
        """T_RPC: an admin command, see _command. T_STATS: this worker's figures, see stats."""
        return self.stats() if record[0] == iw.T_STATS else self._command(record[1])

    def stats(self) -> dict[str, Any]:
        """What worker 0 sums for the node's /metrics, /status.json, /health, $SYS and Graphite."""
        from vmqpy.admin.commands import node_status
        from vmqpy.admin.http import health_concerns

        node = self.node
        health = health_concerns(node)
        if not self.links.complete():
            health.append("not linked to every other worker")
        return {"metrics": [(s.kind, s.name, s.value) for s in node.metrics.samples()],
                "status": node_status(node), "health": health}

    def _command(self, argv: list[str]) -> tuple:
        """An admin command: (ok, 'table', rows, columns) or (ok, 'text', output)."""
        from vmqpy.admin.commands import Table, execute

        try:
            ok, out = execute(self.node, argv)
        except Exception as e:  # an admin bug must not take the link down
            log.exception("admin command %s failed", argv)
            return False, "text", f"Error: {e}"
        if isinstance(out, Table):
            return ok, "table", out.rows, out.columns
        return ok, "text", str(out)


def tls_contexts(opts: dict) -> tuple:
    """(server, client) TLS contexts of a vmqs listener: the node's certfile/keyfile both ways; with
    a cafile, the other side's certificate must verify against it (names are not checked: nodes
    are reached by address, and the cookie proves membership)."""
    try:
        server = tls.server_context(opts)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.minimum_version = tls.TLS_VERSIONS[opts.get("tls_version") or "tlsv1.2"]
        client.load_cert_chain(opts["certfile"], opts.get("keyfile") or None)
        if opts.get("cafile"):
            client.load_verify_locations(cafile=opts["cafile"])
        else:
            client.verify_mode = ssl.CERT_NONE
    except (OSError, ValueError) as e:
        raise ListenerError(f"cluster TLS: {e}") from e
    return server, client


def _merge_groups(groups: list) -> dict[str, dict]:
    """[(group, members)] per matching filter -> {group: all its matching members}."""
    merged: dict[str, dict] = {}
    for name, members in groups:
        if name in merged:
            merged[name] = {**merged[name], **members}
        else:
            merged[name] = members
    return merged
