"""The outgoing buffer of a bridge: messages for the remote broker until it acknowledged them.

Entries keep their order. `take` hands out the next unsent ones, `done` forgets one (QoS 0 once
written, QoS 1/2 once the remote acknowledged it), `rewind` makes every taken but not done entry
unsent again (the connection dropped and the remote has no session to resend into).

`MemoryBuffer` holds them in memory. `DiskBuffer` (persistent_queue = on) holds them in a RocksDB
message store of its own under queue_dir: `put` writes the entry (one WriteBatch, in the WAL)
before it returns, so a message the local broker acknowledged to its publisher is on disk before
that PUBACK leaves, and survives a restart or SIGKILL; `done` entries are removed in batches
(`flush`), so a crash may resend a few (QoS 1 is at least once).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from vmqpy.broker.message import Msg
from vmqpy.broker.queue import RETAIN_FLAG  # flags: qos in bits 0-1, retain in bit 2, as the broker stores them
from vmqpy.store.messages import MessageStore

_KEY = "out"


class Entry(NamedTuple):
    seq: int
    msg: Msg  # topic already as the remote broker sees it
    qos: int
    retain: bool


class MemoryBuffer:
    def __init__(self) -> None:
        self._unsent: deque[Entry] = deque()
        self._taken: dict[int, Entry] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._unsent) + len(self._taken)

    def put(self, msg: Msg, qos: int, retain: bool) -> None:
        self._seq += 1
        self._unsent.append(Entry(self._seq, msg, qos, retain))

    def unsent(self) -> bool:
        return bool(self._unsent)

    def take(self, n: int) -> list[Entry]:
        out = []
        while self._unsent and len(out) < n:
            entry = self._unsent.popleft()
            self._taken[entry.seq] = entry
            out.append(entry)
        return out

    def done(self, entry: Entry) -> None:
        self._taken.pop(entry.seq, None)

    def rewind(self) -> None:
        self._unsent.extendleft(sorted(self._taken.values(), reverse=True))
        self._taken.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class DiskBuffer:
    def __init__(self, path: str, page: int, sync: bool = False) -> None:
        self._store = MessageStore(path, sync)  # sync: fsync each write, as message_store.sync
        self._page = page
        self._count = self._store.count(_KEY)
        self._taken = 0        # entries handed out and not done
        self._cursor: int | None = None  # seq of the last entry read back
        self._read: deque[Entry] = deque()  # read back, not handed out yet

    def __len__(self) -> int:
        return self._count

    def put(self, msg: Msg, qos: int, retain: bool) -> None:
        self._store.append(_KEY, msg, qos | (RETAIN_FLAG if retain else 0))
        self._store.flush()
        self._count += 1

    def unsent(self) -> bool:
        return self._count > self._taken

    def take(self, n: int) -> list[Entry]:
        out = []
        while len(out) < n and self.unsent():
            if not self._read:
                rows = self._store.read(_KEY, max(self._page, n), after=self._cursor)
                if not rows:
                    break
                self._cursor = rows[-1][0]
                self._read.extend(Entry(seq, msg, flags & 3, bool(flags & RETAIN_FLAG)) for seq, msg, flags in rows)
            out.append(self._read.popleft())
        self._taken += len(out)
        return out

    def done(self, entry: Entry) -> None:
        self._store.remove(_KEY, entry.seq, entry.msg.ref)
        self._count -= 1
        self._taken -= 1

    def rewind(self) -> None:
        self._cursor = None
        self._read.clear()
        self._taken = 0

    def flush(self) -> None:
        if self._store.pending():
            self._store.flush()

    def close(self) -> None:
        self.flush()
        self._store.close()
