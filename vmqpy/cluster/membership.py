"""Cluster membership: which nodes form the cluster, how to reach them, join and leave.

The member list is replicated metadata (metadata.py): one object per node,
`("members", (NODENAME,))` -> {"host", "port", "workers"}, written by worker 0
of that node when it starts and tombstoned by `cluster leave`. There is no
master: joining means linking to any member (`cluster join
discovery-node=N`); the two sides send each other their metadata when their
streams come up, and a change of the member list spreads by plumtree
(metadata.py), so every endpoint of every node learns every member and links
to each of its endpoints. The list persists with the
replica, so a restarted node links to its cluster again without a new join.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import gevent

from vmqpy.cluster import links as iw
from vmqpy.cluster.metadata import MEMBERS
from vmqpy.config_schema import CLUSTER_KINDS

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
LEAVE_GRACE = 2.0       # a leaving node's endpoints get the tombstone before we drop their links


class Membership:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        node = runtime.node
        self.name: str = node.name
        self.replica = runtime.meta.replica
        self.address = cluster_address(node.config)
        self.split: set[str] = set()  # member nodes none of whose endpoints we reach since they went down
        self.synced: set[str] = set()  # endpoints whose full state came in since their stream came up
        self._seen: set[str] = set()  # endpoints whose stream was up at least once
        self._linked_at: dict[str, float] = {}

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self.replica.subscribe(MEMBERS, self._changed)
        own = self.replica.get(MEMBERS, (self.name,))
        if self.rt.index == 0 and self.address is not None and own != self._own_record():
            self.rt.meta.publish(self.replica.put(MEMBERS, (self.name,), self._own_record()))
        for (name,), info in list(self.replica.fold(MEMBERS)):
            if name != self.name:
                self._link(name, info)

    def endpoint_up(self, pid: str) -> None:
        self._seen.add(pid)
        name = pid.rpartition("/")[0]
        if name in self.split and self.running(name):
            self.split.discard(name)
            self.rt.node.metrics.counters["netsplit_resolved"] += 1
            log.warning("node %s is reachable again: netsplit resolved", name)
            self.rt.registrations.reconcile(name)

    def endpoint_down(self, pid: str) -> None:
        self.synced.discard(pid)
        name = pid.rpartition("/")[0]
        if (name != self.name and name not in self.split and self.replica.get(MEMBERS, (name,)) is not None
                and not self.running(name)):
            self.split.add(name)
            self.rt.node.metrics.counters["netsplit_detected"] += 1
            log.warning("node %s is unreachable: netsplit detected", name)

    def _own_record(self) -> dict:
        host, port = self.address
        return {"host": host, "port": port, "workers": self.rt.count}

    # -- what the operator sees and does ------------------------------------
    def members(self) -> dict[str, dict]:
        found = {name: info for (name,), info in self.replica.fold(MEMBERS)}
        found.setdefault(self.name, {})
        return found

    def running(self, name: str) -> bool:
        """This node, or a node one of whose endpoints we have a stream to."""
        if name == self.name:
            return True
        prefix = f"{name}/"
        return any(p.up for pid, p in self.rt.links.peers.items() if pid.startswith(prefix))

    def syncing(self) -> list[str]:
        """The nodes whose state this endpoint still waits for (`vernemq ping` says pong once there are
        none): an endpoint of theirs is up and has not sent its full state yet, or has not been up since
        we started linking to it and the heartbeat timeout (after which it counts as down) has not passed."""
        grace = self.rt.node.config["cluster_heartbeat_timeout"] / 1000
        now = time.monotonic()
        waiting = set()
        for pid, peer in self.rt.links.peers.items():
            if peer.up:
                pending = pid not in self.synced
            else:
                linked = self._linked_at.get(pid)
                pending = pid not in self._seen and linked is not None and now - linked < grace
            if pending:
                waiting.add(pid.rpartition("/")[0])
        return sorted(waiting)

    def join(self, discovery: str) -> str | None:
        """Link to `discovery` (NAME@HOST) and wait until it is a member: None, or why not."""
        if self.address is None:
            return "this node has no cluster listener (listener.vmq.clustering)"
        if discovery == self.name:
            return "a node cannot join itself"
        name, sep, host = discovery.partition("@")
        if not sep or not name or not host:
            return f"invalid node name {discovery!r}: expected NAME@HOST"
        pid = f"{discovery}/0"
        known = pid in self.rt.links.peers
        if not known:
            self.rt.links.add_peer(pid, self._transport(host, self.address[1]))
        deadline = time.monotonic() + JOIN_TIMEOUT
        while self.replica.get(MEMBERS, (discovery,)) is None:
            if time.monotonic() > deadline:
                if not known and self.replica.get(MEMBERS, (discovery,)) is None:
                    self.rt.links.remove_peer(pid)
                return f"node {discovery} did not answer within {JOIN_TIMEOUT:.0f}s"
            gevent.sleep(0.05)
        log.info("joined the cluster of %s", discovery)
        return None

    def leave(self, name: str) -> str | None:
        """Remove `name` from the cluster: None, or why not."""
        if name not in self.members():
            return f"{name} is not a member of this cluster"
        record = self.replica.delete(MEMBERS, (name,))
        if record is not None:
            self.rt.meta.publish(record)
        return None

    # -- following the member list -------------------------------------------
    def _changed(self, key: tuple, old: dict | None, new: dict | None) -> None:
        (name,) = key
        if name == self.name:
            if new is None and old is not None:
                gevent.spawn(self._removed)
            return
        if new is None:
            log.info("node %s left the cluster", name)
            self.split.discard(name)  # a member that left no longer splits the cluster
            gevent.spawn(self._unlink_later, name)
            self.rt.sessions.departure(name)
        else:
            self.rt.sessions.rejoined(name)
            if old is None:
                log.info("node %s is a member of the cluster", name)
            elif (old.get("host"), old.get("port"), old.get("workers")) != (new["host"], new["port"],
                                                                           new["workers"]):
                self._unlink(name)
            self._link(name, new)

    def _link(self, name: str, info: dict) -> None:
        try:
            host, port, workers = str(info["host"]), int(info["port"]), int(info["workers"])
        except (KeyError, TypeError, ValueError):
            log.error("member %s has an unusable address %r", name, info)
            return
        for k in range(workers):
            self._linked_at.setdefault(f"{name}/{k}", time.monotonic())
            self.rt.links.add_peer(f"{name}/{k}", self._transport(host, port))

    def _transport(self, host: str, port: int) -> iw.TcpTransport:
        cfg = self.rt.node.config
        return iw.TcpTransport(host, port, cfg["distributed_cookie"], cfg["outgoing_clustering_buffer_size"] or None,
                               self.rt.client_tls)

    def _unlink(self, name: str) -> None:
        prefix = f"{name}/"
        for pid in [p for p in self.rt.links.peers if p.startswith(prefix)]:
            self.rt.links.remove_peer(pid)
            self.rt.forget_remote(pid)

    def _unlink_later(self, name: str) -> None:
        prefix = f"{name}/"
        ends = {p for p, peer in self.rt.links.peers.items() if p.startswith(prefix) and peer.up}
        if ends:
            self.rt.links.barrier(LEAVE_GRACE, ends)  # the tombstone reaches them first
        if self.replica.get(MEMBERS, (name,)) is None:
            self._unlink(name)

    def _removed(self) -> None:
        """This node was made to leave: forget the others (no tombstones: they stay members of
        their cluster) and stand alone, so a restart does not link to them again."""
        log.warning("this node was removed from the cluster: standing alone")
        self.rt.links.barrier(LEAVE_GRACE)
        for (name,), _ in list(self.replica.fold(MEMBERS)):
            if name != self.name:
                self.replica.forget(MEMBERS, (name,))
                self._unlink(name)
        if self.rt.index == 0 and self.address is not None:
            self.replica.put(MEMBERS, (self.name,), self._own_record())


def cluster_listener(cfg):
    """The listener other nodes reach this one at: `clustering` of kind vmq or vmqs, else the first."""
    specs = [s for s in cfg.listeners if s.kind in CLUSTER_KINDS]
    return next((s for s in specs if s.name == "clustering"), specs[0] if specs else None)


def cluster_address(cfg) -> tuple[str, int] | None:
    """(host, port) other nodes reach us at: the `listener.vmq(s).clustering` (or first) listener;
    an unspecified address (0.0.0.0, ::) is replaced by the host part of the node name."""
    spec = cluster_listener(cfg)
    if spec is None:
        return None
    host = spec.host
    if host in ("0.0.0.0", "::", ""):
        host = cfg["nodename"].partition("@")[2]
    return host, spec.port
