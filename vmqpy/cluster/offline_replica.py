"""offline_message_replica = on: every stored offline message also on a second node.

The copy goes to the endpoint that re-creates the session if this node is
removed while it is down (cluster/sessions.py): the worker owning the client
id on the node the ring picks among the other members. So a dead node's
leave re-creates each session with its messages, not only its
subscriptions. The node's message store is wrapped (`ReplicatingStore`):
what a queue appends, removes (acked, expired, dropped) or deletes is also
sent as a T_REPLICA record to that endpoint, which keeps it in a message
store of copies next to its own (`message_store.dir` + `.copies`), under
`ORIGIN\\x00QUEUE` at the origin's sequence numbers. Copies do not count as
the endpoint's own offline messages (`queued`, cluster show --sessions).

Cost: one more cluster record per stored message and per removal, and the
second node's disk. The publisher's ack waits for the copy when the message
was stored by the endpoint that read the PUBLISH (its batch's confirm covers
the replica endpoint); a message stored by another node, after a forward, is
copied right after it is stored there, without the publisher waiting.
Copies made before a change of the member list (or of nr_of_workers) stay
where they were made: a departed node's copies go from wherever they are to
the endpoint re-creating their session.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from vmqpy.broker.message import Msg
from vmqpy.broker.queue import RETAIN_FLAG
from vmqpy.cluster import links as iw
from vmqpy.cluster.metadata import MEMBERS
from vmqpy.cluster.registration import msg_fields, msg_from
from vmqpy.store.messages import MessageStore

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

log = logging.getLogger(__name__)


def _sid(queue_key: str) -> tuple[str, str]:
    mountpoint, _, client_id = queue_key.partition("\x00")
    return mountpoint, client_id


class ReplicatingStore:
    """The node's message store; every change to the stored messages also goes to the queue's
    replica endpoint. Everything else is the store's own."""

    def __init__(self, runtime: WorkerRuntime, inner: MessageStore) -> None:
        self.rt = runtime
        self.inner = inner
        self._holders: dict[str, str | None] = {}  # queue key -> its replica endpoint, until members change
        runtime.meta.replica.subscribe(MEMBERS, lambda key, old, new: self._holders.clear())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, queue_key: str, msg: Msg, flags: int, seq: int | None = None) -> int:
        seq = self.inner.append(queue_key, msg, flags, seq)
        pid = self._send(queue_key, (iw.T_REPLICA, "add", queue_key, seq, msg_fields(msg), flags))
        if pid is not None:
            self.rt.links.qos_sent[pid] += 1  # the publisher's confirm() waits for the copy too
        return seq

    def remove(self, queue_key: str, seq: int, ref: bytes) -> None:
        self.inner.remove(queue_key, seq, ref)
        self._send(queue_key, (iw.T_REPLICA, "del", queue_key, seq))

    def delete_queue(self, queue_key: str) -> None:
        self.inner.delete_queue(queue_key)
        self._send(queue_key, (iw.T_REPLICA, "drop", queue_key))

    def _send(self, queue_key: str, record: tuple) -> str | None:
        pid = self._holders.get(queue_key, "")
        if pid == "":
            pid = self._holders[queue_key] = self._holder(_sid(queue_key))
        peer = self.rt.links.peers.get(pid) if pid is not None else None
        if peer is None:
            return None
        peer.send(record)
        return pid

    def _holder(self, sid: tuple[str, str]) -> str | None:
        """The endpoint that would re-create `sid` if this node left: None when we stand alone."""
        members = {n: i for n, i in self.rt.registrations.members().items() if n != self.rt.node.name}
        return self.rt.registrations.endpoint_for(members, sid) if members else None


class Copies:
    """The copies this endpoint keeps for other nodes, in a message store of their own (opened on
    the first copy: a node whose peers replicate nothing has none)."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        self._store: MessageStore | None = None

    @property
    def path(self) -> str:
        return f"{self.rt.node.config['message_store.dir']}.copies"

    @property
    def store(self) -> MessageStore:
        if self._store is None:
            self._store = MessageStore(self.path, sync=self.rt.node.config["message_store.sync"])
        return self._store

    def received(self, sender: str, record: tuple) -> None:
        """A T_REPLICA record from endpoint `sender`: keep, forget or drop copies of its messages."""
        op, queue_key = record[1], record[2]
        if type(queue_key) is not str:
            raise ValueError(f"T_REPLICA for an unusable queue key {queue_key!r}")
        key = f"{sender.rpartition('/')[0]}\x00{queue_key}"
        if op == "add":
            self.store.append(key, msg_from(record[4]), int(record[5]), int(record[3]))
        elif op == "del":
            self.store.remove_seq(key, int(record[3]))
        elif op == "drop":
            self.store.delete_queue(key)
        else:
            raise ValueError(f"unknown T_REPLICA operation {op!r}")

    def take(self, origin: str) -> dict[tuple[str, str], list[tuple[Msg, int, bool]]]:
        """Remove and return the copies kept for node `origin`, by session, oldest first."""
        if self._store is None and not os.path.isdir(self.path):
            return {}
        store = self.store
        prefix = f"{origin}\x00"
        found = {}
        for key in store.queue_keys():
            if key.startswith(prefix):
                found[_sid(key[len(prefix):])] = [(msg, flags & 3, bool(flags & RETAIN_FLAG))
                                                  for _, msg, flags in store.read(key, None)]
                store.delete_queue(key)
        store.flush()
        return found

    def flush(self) -> None:
        if self._store is not None and self._store.pending():
            self._store.flush()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
