"""The offline message store: QoS 1/2 messages of persistent sessions in RocksDB.

A message fanned out to many queues is stored once under its ref with a
reference count; each queue holds index entries in append order. Changes are
staged in memory and written by `flush()` as one atomic WriteBatch, so a body,
its refcount, the index entries and the counters never disagree after a crash.

Key layout (one column family; `Q` = 2-byte length + UTF-8 queue key):
    b"m" ref            -> message body (see _encode)
    b"c" ref            -> refcount, 4 bytes big-endian
    b"q" Q seq          -> delivery flags (1 byte, 0-255) + ref; seq is 8 bytes big-endian
    b"s"                -> counters: bodies, index entries (8 bytes each)

Each index entry has a per-queue seq, increasing in append order; `read` hands
it out so the queue can page past unacked entries (`after`) and remove by it.
"""

from __future__ import annotations

import logging
import struct

import ujson

from vmqpy.broker.message import Msg
from vmqpy.store.metadata import pack, unpack
from vmqpy.store.rocks import RocksDB, StoreError, successor

__all__ = ["MessageStore", "StoreError"]

log = logging.getLogger(__name__)

_STATS = b"s"
_COUNTERS = struct.Struct(">QQ")
_LEN = struct.Struct(">I")
_BODY_FORMAT = b"\x01"


def _encode(msg: Msg) -> bytes:
    # Fixed fields go through ujson (7x faster than pack); only properties may hold bytes.
    meta = ujson.dumps([msg.topic, msg.qos, msg.retain, msg.mountpoint, msg.expiry, msg.sender],
                       ensure_ascii=False).encode()
    props = pack(msg.properties) if msg.properties else b""
    return b"".join((_BODY_FORMAT, _LEN.pack(len(meta)), meta, _LEN.pack(len(props)), props,
                     msg.payload))


def _decode(ref: bytes, body: bytes) -> Msg:
    if body[:1] != _BODY_FORMAT:
        raise ValueError(f"unknown body format {body[:1]!r}")
    n = _LEN.unpack_from(body, 1)[0]
    topic, qos, retain, mountpoint, expiry, sender = ujson.loads(body[5:5 + n])
    i = 5 + n
    n = _LEN.unpack_from(body, i)[0]
    properties = unpack(body[i + 4:i + 4 + n]) if n else None
    return Msg(topic, body[i + 4 + n:], qos, retain, properties, mountpoint, expiry,
               tuple(sender) if sender is not None else None, ref)


def _qprefix(queue_key: str) -> bytes:
    raw = queue_key.encode()
    return len(raw).to_bytes(2, "big") + raw


class MessageStore:
    """Ref-counted, fan-out aware offline message store (DESIGN §4).

    Every call is short and never yields to other greenlets; `read(key, None)`
    and `delete_queue` walk a whole queue, so page huge queues with `limit`/`after`.
    """

    def __init__(self, path: str, sync: bool = False) -> None:
        self._db = RocksDB(path, sync)
        # Staged writes, newest value per key (None: delete); reads look here first.
        self._pending: dict[bytes, bytes | None] = {}
        self._next_seq: dict[str, int] = {}  # filled lazily from the last index key
        self._counts: dict[str, int] = {}  # filled lazily by one index scan per queue
        raw = self._db.get(_STATS)
        if raw is not None and len(raw) != _COUNTERS.size:
            raise StoreError(f"corrupt counters record in {path}")
        self._bodies, self._entries = _COUNTERS.unpack(raw) if raw else (0, 0)

    # -- staging

    def _get(self, key: bytes) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        return self._db.get(key)

    def _refcount(self, ref: bytes) -> int:
        raw = self._get(b"c" + ref)
        return int.from_bytes(raw, "big") if raw else 0

    def _seq(self, queue_key: str, qp: bytes) -> int:
        seq = self._next_seq.get(queue_key)
        if seq is None:
            last = self._db.last_key(b"q" + qp)
            seq = int.from_bytes(last[-8:], "big") + 1 if last else 0
        self._next_seq[queue_key] = seq + 1
        return seq

    def append(self, queue_key: str, msg: Msg, flags: int, seq: int | None = None) -> int:
        """Stage msg for queue_key, at the queue's next seq or at `seq` (a copy kept for another node,
        numbered as there); flags (0-255: delivery qos, retain bit) come back from read. Returns the seq."""
        qp = _qprefix(queue_key)
        if seq is None:
            seq = self._seq(queue_key, qp)
        elif self._get(b"q" + qp + seq.to_bytes(8, "big")) is not None:
            return seq  # that copy is here already (sent twice)
        at = seq.to_bytes(8, "big")
        ref = msg.ref
        rc = self._refcount(ref)
        if rc == 0:
            self._pending[b"m" + ref] = _encode(msg)
            self._bodies += 1
        self._pending[b"c" + ref] = (rc + 1).to_bytes(4, "big")
        self._pending[b"q" + qp + at] = bytes([flags]) + ref
        self._entries += 1
        if queue_key in self._counts:
            self._counts[queue_key] += 1
        return seq

    def remove(self, queue_key: str, seq: int, ref: bytes) -> None:
        """Stage removal of queue_key's entry seq (holding ref); the last reference drops the body."""
        key = b"q" + _qprefix(queue_key) + seq.to_bytes(8, "big")
        entry = self._get(key)
        if entry is None or entry[1:] != ref:
            return  # already removed: acks may repeat
        self._pending[key] = None
        rc = self._refcount(ref) - 1
        if rc > 0:
            self._pending[b"c" + ref] = rc.to_bytes(4, "big")
        else:
            self._pending[b"c" + ref] = None
            self._pending[b"m" + ref] = None
            self._bodies -= 1
        self._entries -= 1
        if queue_key in self._counts:
            self._counts[queue_key] -= 1

    def remove_seq(self, queue_key: str, seq: int) -> None:
        """remove() for a caller that knows the seq only (a copy kept for another node)."""
        entry = self._get(b"q" + _qprefix(queue_key) + seq.to_bytes(8, "big"))
        if entry is not None:
            self.remove(queue_key, seq, entry[1:])

    def pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write everything staged as one atomic batch (fsynced if sync); no-op when idle."""
        if not self._pending:
            return
        ops = list(self._pending.items())
        ops.append((_STATS, _COUNTERS.pack(self._bodies, self._entries)))
        self._db.write(ops)
        self._pending.clear()  # only after success: a failed write can be retried

    # -- reading

    def _index(self, queue_key: str, limit: int | None, after: int | None = None
               ) -> list[tuple[int, int, bytes]]:
        """Live (seq, flags, ref) entries of a queue past `after`, oldest first, staged changes applied."""
        prefix = b"q" + _qprefix(queue_key)
        start = prefix + (after + 1).to_bytes(8, "big") if after is not None else prefix
        out: list[tuple[int, int, bytes]] = []
        if limit is not None and limit <= 0:
            return out
        pending = self._pending
        for key, value in self._db.scan(prefix, start):
            value = pending.get(key, value)
            if value is None:
                continue  # removal staged
            out.append((int.from_bytes(key[-8:], "big"), value[0], value[1:]))
            if len(out) == limit:
                return out
        # Staged appends have larger seqs than anything on disk: they go last.
        for key in sorted(k for k, v in pending.items()
                          if v is not None and k.startswith(prefix) and k >= start):
            value = pending[key]
            out.append((int.from_bytes(key[-8:], "big"), value[0], value[1:]))
            if len(out) == limit:
                break
        return out

    def read(self, queue_key: str, limit: int | None = None, after: int | None = None
             ) -> list[tuple[int, Msg, int]]:
        """Up to limit (seq, Msg, flags) of queue_key with seq > after, oldest first, staged included."""
        out = []
        for seq, flags, ref in self._index(queue_key, limit, after):
            body = self._get(b"m" + ref)
            if body is None:
                log.error("message store %s: index entry of %r points to missing message %s",
                          self._db.path, queue_key, ref.hex())
                continue
            try:
                out.append((seq, _decode(ref, body), flags))
            except (ValueError, struct.error) as e:
                log.error("message store %s: unreadable message %s: %s", self._db.path, ref.hex(), e)
        return out

    def count(self, queue_key: str) -> int:
        """Entries in queue_key; one index scan (no bodies) the first time, then kept in memory."""
        n = self._counts.get(queue_key)
        if n is None:
            n = self._counts[queue_key] = len(self._index(queue_key, None))
        return n

    def queue_keys(self) -> list[str]:
        """Queues holding at least one message (staged changes included)."""
        found: set[str] = set()
        start = b"q"
        while True:  # one seek per queue: skip over each queue's entries
            key = next((k for k, _ in self._db.scan(b"q", start)), None)
            if key is None:
                break
            n = int.from_bytes(key[1:3], "big")
            found.add(key[3:3 + n].decode())
            start = successor(key[:3 + n])
        for key, value in self._pending.items():
            if key[:1] == b"q" and value is not None:
                found.add(key[3:3 + int.from_bytes(key[1:3], "big")].decode())
        return sorted(q for q in found if not self._pending or self._index(q, 1))

    def delete_queue(self, queue_key: str) -> None:
        """Stage removal of every entry of queue_key; seqs keep counting up."""
        for seq, _, ref in self._index(queue_key, None):
            self.remove(queue_key, seq, ref)

    def stats(self) -> dict:
        return {"messages": self._bodies, "index_entries": self._entries,
                "disk_bytes": self._db.disk_bytes(), "pending_writes": len(self._pending)}

    def compact(self) -> None:
        """Flush, then compact so deleted messages leave the disk (can take a while)."""
        self.flush()
        self._db.compact()

    def close(self) -> None:
        self.flush()
        self._db.close()
