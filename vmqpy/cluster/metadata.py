"""The cluster's replicated metadata on this endpoint: the replica and how it travels (docs/cluster.md).

Every endpoint (a worker of a node) holds a full replica (replica.py),
persisted in its own metadata store. Prefixes:

- `members`: the member list (membership.py). A change travels by plumtree
  (plumtree.py): pushed along a spanning tree of the mesh, announced on the
  other links, grafted where a push was lost, so every endpoint gets it even
  from endpoints that are not linked to its writer yet (a join).
- `retain`: retained messages, `(mountpoint, topic)` -> the stored record. A
  change goes from the endpoint that made it to every other endpoint; the
  retained trie of each endpoint follows its replica.
- `api_keys`: the HTTP API keys (admin/apikeys.py), `(key,)` -> scope and
  expiry, through `view()`: a key made on one node opens every node.
- `config`: `vmq-admin set KEY=VALUE --all`, `(key,)` -> the value as text,
  applied on every endpoint when it changes and when the endpoint starts.
- `sessions`, `queued`: persistent sessions and where they are, what each
  endpoint keeps on its disk (sessions.py).

When a stream to a peer comes up, the peer first gets every record we hold
(tombstones included), as it got our subscriptions. Anti-entropy repairs what
was lost since: every few seconds one random peer gets our digest; where its
buckets differ it answers with its records of those buckets and asks for
ours. A round that finds equal digests lets tombstones older than it be
collected once every endpoint of the cluster had one with us.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

import gevent

from vmqpy.admin.apikeys import PREFIX as API_KEYS
from vmqpy.broker.message import Msg
from vmqpy.broker.retain import PREFIX as RETAIN
from vmqpy.broker.retain import to_record
from vmqpy.cluster import links as iw
from vmqpy.cluster.plumtree import Plumtree
from vmqpy.cluster.replica import Replica, diff
from vmqpy.config import ConfigError

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

log = logging.getLogger(__name__)

MEMBERS = "members"
CONFIG = "config"
SESSIONS, QUEUED = "sessions", "queued"  # written by cluster/sessions.py
SYNCED = (MEMBERS, RETAIN, API_KEYS, CONFIG, SESSIONS, QUEUED)  # sent in full when a stream comes up
ADOPTED = (RETAIN, API_KEYS)  # kept by one process before it was linked: taken into the replica
EXCHANGE_EVERY = 5  # anti-entropy rounds, in ticks
TICK = 1.0  # seconds between plumtree grafts checks
# T_META payloads: ("rec", record) one object; ("digest", digest) an anti-entropy round opens;
# ("repair", records, buckets) what differed, and which of ours to send back; ("recs", records).


class ClusterMetadata:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        node = runtime.node
        self.replica = Replica(runtime.me, node.metadata)
        self.tree = Plumtree(runtime.me, graft_after=TICK)
        self._greenlet: gevent.Greenlet | None = None
        self._adopt_local_retained()
        self.replica.subscribe(RETAIN, self._retained_changed)
        self.replica.subscribe(CONFIG, self._config_changed)
        for key, value in self.replica.fold(CONFIG):
            self._config_changed(key, None, value)
        node.retain.replicate = self.retain
        node.metrics.gauge("metadata_objects", self.replica.__len__)
        node.metrics.gauge("metadata_tombstones", lambda: self.replica.tombstones)

    def _adopt_local_retained(self) -> None:
        """Retained messages and API keys this process kept on its own (standalone, or moved here by a
        change of nr_of_workers) enter the replica; the trie gets every retained message it holds."""
        node = self.rt.node
        for prefix in ADOPTED:
            for key, record in list(node.metadata.fold(prefix)):
                rkey = key if isinstance(key, tuple) else (key,)
                if self.replica.get(prefix, rkey) is None:
                    self.replica.put(prefix, rkey, record)
                node.metadata.delete(prefix, key)
        for key, record in self.replica.fold(RETAIN):
            node.retain.apply(*key, record)

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._exchange_loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    # -- writes made here ------------------------------------------------------
    def retain(self, msg: Msg) -> None:
        """RetainStore's seam: set (or, with an empty payload, clear) a retained message everywhere."""
        key = (msg.mountpoint, msg.topic)
        record = (self.replica.put(RETAIN, key, to_record(msg)) if msg.payload
                  else self.replica.delete(RETAIN, key))
        if record is not None:
            self.publish(record)

    def view(self, prefix: str) -> SharedPrefix:
        """One prefix of the replica with the metadata store's interface (string keys), every write
        going to every endpoint."""
        return SharedPrefix(self, prefix)

    def publish(self, record: tuple) -> None:
        """Send a change made here: members joining by plumtree, the rest straight to every peer."""
        if record[0] == MEMBERS and record[2] is not None:
            self.tree.peers(self.rt.links.peers)
            self._send_all(self.tree.broadcast(_mid(record), record))
        else:  # a node leaving drops its links soon: its removal goes to every peer at once
            self.rt.links.broadcast((iw.T_META, ("rec", record)))

    def _send_all(self, out: list[tuple[str, tuple]]) -> None:
        for pid, message in out:
            self._send(pid, ("tree", message))

    def _retained_changed(self, key: tuple, old: dict | None, new: dict | None) -> None:
        self.rt.node.retain.apply(key[0], key[1], new)

    def _config_changed(self, key: tuple, old: str | None, new: str | None) -> None:
        if new is None:
            return  # a value set cluster-wide stays where it is when the entry goes
        try:
            self.rt.node.change_config({key[0]: new})
        except ConfigError as e:  # set --all checked it where it was typed; a newer schema may differ
            log.error("cluster-wide setting %s = %s not applied: %s", key[0], new, e)

    # -- what peers send -----------------------------------------------------------
    def sync_records(self) -> list:
        return [(iw.T_META, ("rec", rec)) for prefix in SYNCED for rec in self.replica.records(prefix)]

    def received(self, sender: str, payload: tuple) -> None:
        what = payload[0]
        if what == "rec":
            self._apply(payload[1])
        elif what == "digest":
            self._compare(sender, payload[1], payload[2])
        elif what == "repair":
            for rec in payload[1]:
                self._apply(rec)
            self._send(sender, ("recs", self._records(payload[2])))
        elif what == "recs":
            for rec in payload[1]:
                self._apply(rec)
        elif what == "match":
            self.replica.exchanged(sender, payload[1])
        elif what == "tree":
            self.tree.peers(self.rt.links.peers)
            record, out = self.tree.receive(sender, payload[1], time.monotonic())
            if record is not None:
                self.replica.apply(record)
            self._send_all(out)
        else:
            raise ValueError(f"unknown metadata message {what!r}")

    def _apply(self, record: tuple) -> None:
        if self.replica.apply(record) and record[0] == MEMBERS:
            # learned outside the tree (a stream's sync, a repair): spread it on, the tree prunes repeats;
            # and straight to this node's other workers, whose links to us the tree may have made lazy:
            # a joining node must not wait for a graft to be known by all of them
            self.tree.peers(self.rt.links.peers)
            self._send_all(self.tree.broadcast(_mid(record), record))
            for pid in self.rt.links.local:
                self._send(pid, ("rec", record))

    def _send(self, pid: str, payload: tuple) -> None:
        peer = self.rt.links.peers.get(pid)
        if peer is not None:
            peer.send((iw.T_META, payload))

    # -- anti-entropy ----------------------------------------------------------------
    def _compare(self, sender: str, theirs: dict, started: float) -> None:
        buckets = diff(self.replica.digest(), theirs)
        if not buckets:
            self.replica.exchanged(sender, self.replica.now())
            self._send(sender, ("match", started))
        else:
            self._send(sender, ("repair", self._records(buckets), [list(b) for b in buckets]))

    def _records(self, buckets) -> list[tuple]:
        return [rec for prefix, b in buckets for rec in self.replica.bucket(str(prefix), int(b))]

    def _exchange_loop(self) -> None:
        ticks = 0
        while True:
            gevent.sleep(TICK)
            self._send_all(self.tree.tick(time.monotonic()))
            ticks += 1
            if ticks % EXCHANGE_EVERY or random.random() < 0.3:  # jittered rounds, ~every 5-7 s
                continue
            links = self.rt.links
            up = [pid for pid, peer in links.peers.items() if peer.up]
            if up:
                self._send(random.choice(up), ("digest", self.replica.digest(), self.replica.now()))
            collected = self.replica.collect([self.rt.me, *links.peers])
            if collected:
                log.debug("collected %d tombstones", collected)


def _mid(record: tuple) -> tuple:
    """A change's identity for plumtree: prefix, key, time and writer."""
    return (record[0], tuple(record[1]), record[4], record[5])


class SharedPrefix:
    """get/put/delete/fold of one replicated prefix, as admin code uses a MetadataStore prefix."""

    def __init__(self, meta: ClusterMetadata, prefix: str) -> None:
        self.meta = meta
        self.prefix = prefix

    def get(self, prefix: str, key: str):
        return self.meta.replica.get(self.prefix, (key,))

    def put(self, prefix: str, key: str, value) -> None:
        self.meta.publish(self.meta.replica.put(self.prefix, (key,), value))

    def delete(self, prefix: str, key: str) -> None:
        record = self.meta.replica.delete(self.prefix, (key,))
        if record is not None:
            self.meta.publish(record)

    def fold(self, prefix: str):
        return [(key[0], value) for key, value in self.meta.replica.fold(self.prefix)]
