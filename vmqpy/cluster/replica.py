"""Replicated cluster metadata: version vectors, tombstones, anti-entropy digests (DESIGN §5).

Every node holds a `Replica` of the cluster-wide metadata (retained messages,
API keys, config, the member list). This module is pure data: it turns local
writes into wire records and merges records from peers; broadcast and
anti-entropy transport live elsewhere. Wire forms are msgpack-safe plain data
(None/bool/int/float/str/bytes/list/tuple/dict with str keys).

Wire record: (prefix, key, value, clock, ts, writer)
  prefix str; key a tuple (or list) of str; value None for a tombstone;
  clock {node: counter >= 1} holding writer; ts the writer's time.time().

Merge (a join, so any order or duplication of records converges): the clock
is the pointwise max; the value is that of the version ranked highest by
(ts, tombstone, writer, packed value) -- a tombstone wins a tie in ts. A local
write stamps ts past the ts of the version it overwrites, so a version that
descends another always also outranks it: causality wins, LWW only decides
between concurrent writes.

Tombstones are collected once every other member finished an anti-entropy
round with matching digests that started after the tombstone was learned.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from vmqpy.store.metadata import pack

log = logging.getLogger(__name__)

NBUCKETS = 64  # anti-entropy buckets per prefix; every node must agree
STORE_PREFIX = "replica"  # the MetadataStore prefix the objects persist under
HASH_SIZE = 16  # bytes per bucket hash

Callback = Callable[[tuple, Any, Any], None]
Obj = tuple  # in memory and on disk: (value, clock, ts, writer)

_MAX_DEPTH = 32
_MAX_CLOCK = 4096  # entries: more nodes than any cluster has; bounds what garbage can cost
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack carries
_EMPTY: dict = {}
_ZERO = bytes(HASH_SIZE)
_U32 = struct.Struct(">I")
_TS = struct.Struct(">d")


# ---------------------------------------------------------------- version vectors

def descends(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True if clock a has seen everything clock b has (a >= b pointwise); equal clocks descend each other."""
    get = a.get
    return all(get(node, 0) >= n for node, n in b.items())


def _join(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    # returns a or b itself when it already is the max, so "unchanged" is an identity test
    if descends(a, b):
        return a
    if descends(b, a):
        return b
    out = dict(a)
    for node, n in b.items():
        if n > out.get(node, 0):
            out[node] = n
    return dict(sorted(out.items()))  # clocks are kept sorted: equal states are equal bytes


def _later(a: Obj, b: Obj) -> bool:
    """True if version a strictly outranks b: larger (ts, tombstone, writer), then larger packed value."""
    ka, kb = (a[2], a[0] is None, a[3]), (b[2], b[0] is None, b[3])
    if ka != kb:
        return ka > kb
    if a[0] is b[0]:
        return False
    return pack(a[0]) > pack(b[0])  # only reached by a writer that lost its state; keeps the merge total


def _may_win(new: Obj, cur: Obj) -> bool:
    # new holds a value: does it rank at least level with cur, so it may be stored or packed?
    return (new[2], False, new[3]) >= (cur[2], cur[0] is None, cur[3])


def merge(a: Obj, b: Obj) -> Obj:
    """The join of two versions (value, clock, ts, writer): commutative, associative, idempotent.

    Returns a itself when b adds nothing to it.
    """
    win = b if _later(b, a) else a
    clock = _join(a[1], b[1])
    if clock is win[1]:
        return win
    return (win[0], clock, win[2], win[3])


# ---------------------------------------------------------------- validation (wire input is untrusted)

def _check_value(v: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is float or t is bytes:
        return
    if t is str:
        _utf8(v)
    elif t is int:
        if not _INT_MIN <= v <= _INT_MAX:
            raise ValueError("integer out of the wire's 64-bit range")
    elif t is list or t is tuple:
        for item in v:
            _check_value(item, depth + 1)
    elif t is dict:
        for k, item in v.items():
            if type(k) is not str:
                raise ValueError("dict keys in values must be str (msgpack maps)")
            _utf8(k)
            _check_value(item, depth + 1)
    else:
        raise ValueError(f"a {t.__name__} is not wire-safe plain data")


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError as e:
        raise ValueError(f"string is not valid UTF-8: {e}") from None


def _check_key(key: Any) -> tuple:
    if type(key) is list:
        key = tuple(key)  # msgpack may give arrays back as lists
    if type(key) is not tuple or not all(type(part) is str for part in key):
        raise ValueError(f"a key is a tuple of str, not {key!r:.60}")
    return key


def _check_clock(clock: Any) -> dict[str, int]:
    if type(clock) is not dict or not clock or len(clock) > _MAX_CLOCK:
        raise ValueError("a clock is a non-empty dict of node -> counter")
    for node, n in clock.items():
        if type(node) is not str or not node or type(n) is not int or not 1 <= n <= _INT_MAX:
            raise ValueError(f"bad clock entry {node!r}: {n!r}")
    return dict(sorted(clock.items()))  # our own copy, in canonical order


def parse(record: Any) -> tuple[str, tuple, Obj]:
    """Validate a wire record into (prefix, key, version); raises ValueError. The value is checked by the caller."""
    if type(record) not in (tuple, list) or len(record) != 6:
        raise ValueError("a replica record is (prefix, key, value, clock, ts, writer)")
    prefix, key, value, clock, ts, writer = record
    if type(prefix) is not str:
        raise ValueError("prefix must be str")
    key = _check_key(key)
    clock = _check_clock(clock)
    if type(ts) is int and _INT_MIN <= ts <= _INT_MAX:
        ts = float(ts)  # a packer may have sent a whole number as an int
    if type(ts) is not float or not math.isfinite(ts):
        raise ValueError("ts must be a finite number")
    if type(writer) is not str or writer not in clock:
        raise ValueError("writer must be a node named in the clock")
    return prefix, key, (value, clock, ts, writer)


# ---------------------------------------------------------------- hashing for digests

def _canon_key(key: tuple) -> bytes:
    # counted, length-prefixed UTF-8 parts: unambiguous, unlike a join on a separator
    out = [_U32.pack(len(key))]
    for part in key:
        raw = _utf8(part)
        out += (_U32.pack(len(raw)), raw)
    return b"".join(out)


def _bucket(ckey: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(ckey, digest_size=8).digest(), "big") % NBUCKETS


def _ident(ckey: bytes, obj: Obj) -> int:
    """A version's identity: key, sorted clock, ts, writer. Not the value: equal identities merge to equal values."""
    h = hashlib.blake2b(ckey + _U32.pack(len(obj[1])), digest_size=HASH_SIZE)
    for node, n in sorted(obj[1].items()):
        raw = _utf8(node)
        h.update(_U32.pack(len(raw)) + raw + n.to_bytes(8, "big"))
    h.update(_TS.pack(obj[2]) + _utf8(obj[3]))
    return int.from_bytes(h.digest(), "big")


def diff(mine: Mapping[str, Sequence[bytes]], theirs: Mapping[str, Sequence[bytes]]) -> list[tuple[str, int]]:
    """The (prefix, bucket) pairs where two digests differ, a prefix missing on one side counting as all-empty."""
    _check_digest(mine)
    _check_digest(theirs)
    empty = (_ZERO,) * NBUCKETS
    out = []
    for prefix in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(prefix, empty), theirs.get(prefix, empty)
        out += [(prefix, i) for i in range(NBUCKETS) if a[i] != b[i]]
    return out


def _check_digest(d: Any) -> None:
    if not isinstance(d, Mapping):
        raise ValueError("a digest is a dict of prefix -> bucket hashes")
    for prefix, hashes in d.items():
        if (type(prefix) is not str or type(hashes) not in (tuple, list) or len(hashes) != NBUCKETS
                or any(type(h) is not bytes or len(h) != HASH_SIZE for h in hashes)):
            raise ValueError(f"bad digest entry for prefix {prefix!r}")


# ---------------------------------------------------------------- the replica

class Replica:
    """This node's copy of the replicated metadata, persisted in `store` under STORE_PREFIX.

    `wall` stamps writes (time.time across nodes); `clock` is a local monotonic
    clock for tombstone ages and must not go backwards. Values and records
    handed out are shared with the replica: treat them as immutable.
    """

    def __init__(self, node: str, store: Any, *, wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if type(node) is not str or not node:
            raise ValueError("node must be a non-empty name")
        self.node = node
        self._store = store
        self._wall = wall
        self._clock = clock
        self._objs: dict[str, dict[tuple, Obj]] = {}
        self._acc: dict[str, list[int]] = {}  # per prefix, per bucket: XOR of live identities
        self._keys: dict[str, list[set[tuple]]] = {}  # per prefix, per bucket: keys incl. tombstones
        self._live: dict[str, int] = {}
        self._tombs: dict[tuple[str, tuple], float] = {}  # (prefix, key) -> seen_at, in seen_at order
        self._subs: dict[str, list[Callback]] = {}
        self._exchanges: dict[str, float] = {}  # peer -> start of its last matching round
        self._load()

    def _load(self) -> None:
        # A tombstone's age does not survive a restart (monotonic clock): it restarts now, which only delays GC.
        for skey, obj in self._store.fold(STORE_PREFIX):
            try:
                prefix, key = skey
                prefix, key, version = parse((prefix, key, *obj))
                _check_value(version[0])
                self._set(prefix, key, None, version, loading=True)
            except (TypeError, ValueError) as e:
                log.warning("skipping unreadable replica record %r: %s", skey, e)

    # ------------------------------------------------------------ reads

    def get(self, prefix: str, key: tuple) -> Any | None:
        """The live value of key, None if absent or deleted."""
        obj = self._objs.get(prefix, _EMPTY).get(key)
        return None if obj is None else obj[0]

    def record(self, prefix: str, key: tuple) -> tuple | None:
        """The wire record of the version held for key (a tombstone included), None if none."""
        obj = self._objs.get(prefix, _EMPTY).get(key)
        return None if obj is None else (prefix, key, *obj)

    def records(self, prefix: str) -> list[tuple]:
        """Every record of prefix, tombstones included: a full sync of a small prefix (the member list)."""
        return [(prefix, k, *o) for k, o in self._objs.get(prefix, _EMPTY).items()]

    def fold(self, prefix: str) -> Iterator[tuple[tuple, Any]]:
        """The prefix's live (key, value) pairs as of the call; callers may write meanwhile."""
        return iter([(k, o[0]) for k, o in self._objs.get(prefix, _EMPTY).items() if o[0] is not None])

    def prefixes(self) -> list[str]:
        """The prefixes holding at least one live value."""
        return [p for p, n in self._live.items() if n]

    def count(self, prefix: str) -> int:
        """How many live values prefix holds."""
        return self._live.get(prefix, 0)

    def __len__(self) -> int:
        return sum(self._live.values())

    @property
    def tombstones(self) -> int:
        """How many tombstones wait for collection."""
        return len(self._tombs)

    def now(self) -> float:
        """The local clock that `exchanged` expects its started_at from."""
        return self._clock()

    # ------------------------------------------------------------ writes

    def put(self, prefix: str, key: tuple, value: Any) -> tuple:
        """Write value locally; returns the wire record to broadcast."""
        if value is None:
            raise ValueError("None is not a value; use delete")
        if type(prefix) is not str:
            raise ValueError("prefix must be str")
        _check_value(value)
        return self._write(prefix, _check_key(key), value)

    def delete(self, prefix: str, key: tuple) -> tuple | None:
        """Delete key locally (a tombstone); returns the wire record to broadcast, None if there was nothing."""
        key = _check_key(key)
        cur = self._objs.get(prefix, _EMPTY).get(key)
        if cur is None or cur[0] is None:
            return None
        return self._write(prefix, key, None)

    def forget(self, prefix: str, key: tuple) -> bool:
        """Drop key here only, leaving no tombstone (a peer that still has it may bring it back); True if held."""
        key = _check_key(key)
        cur = self._objs.get(prefix, _EMPTY).get(key)
        if cur is None:
            return False
        self._drop(prefix, key)
        if cur[0] is not None:
            self._notify(prefix, key, cur[0], None)
        return True

    def _write(self, prefix: str, key: tuple, value: Any) -> tuple:
        cur = self._objs.get(prefix, _EMPTY).get(key)
        ts = float(self._wall())
        if cur is None:
            clock = {self.node: 1}
        else:
            clock = dict(cur[1])
            if self.node in clock:
                clock[self.node] += 1
            else:
                clock = dict(sorted([*clock.items(), (self.node, 1)]))
            ts = max(ts, math.nextafter(cur[2], math.inf))  # outrank what we overwrite even if our clock is behind
        obj = (value, clock, ts, self.node)
        self._set(prefix, key, cur, obj)
        return (prefix, key, value, clock, ts, self.node)

    def apply(self, record: Any) -> bool:
        """Merge a peer's wire record; True if our state changed. Raises ValueError, changing nothing, on garbage."""
        prefix, key, new = parse(record)
        cur = self._objs.get(prefix, _EMPTY).get(key)
        if new[0] is not None and (cur is None or _may_win(new, cur)):
            _check_value(new[0])  # only a value that can be stored (or tie-broken by packing) needs the walk
        merged = new if cur is None else merge(cur, new)
        if merged is cur:
            return False
        self._set(prefix, key, cur, merged)
        return True

    def _set(self, prefix: str, key: tuple, old: Obj | None, new: Obj, loading: bool = False) -> None:
        ckey = _canon_key(key)  # everything that can fail runs before the first change
        b = _bucket(ckey)
        delta = _ident(ckey, new) if new[0] is not None else 0
        if old is not None and old[0] is not None:
            delta ^= _ident(ckey, old)
        if not loading:
            self._store.put(STORE_PREFIX, (prefix, key), new)
        table = self._objs.get(prefix)
        if table is None:
            table = self._objs[prefix] = {}
            self._acc[prefix] = [0] * NBUCKETS
            self._keys[prefix] = [set() for _ in range(NBUCKETS)]
            self._live[prefix] = 0
        table[key] = new
        self._acc[prefix][b] ^= delta
        if old is None:
            self._keys[prefix][b].add(key)
        was, now = (old[0] if old is not None else None), new[0]
        self._live[prefix] += (now is not None) - (was is not None)
        tk = (prefix, key)
        self._tombs.pop(tk, None)
        if now is None:
            self._tombs[tk] = self._clock()  # (re)appended: a changed tombstone is learned anew
        if not loading and was is not now and (was is not None or now is not None):
            self._notify(prefix, key, was, now)

    # ------------------------------------------------------------ subscribers

    def subscribe(self, prefix: str, callback: Callback) -> None:
        """Call callback(key, old, new) after every change of a live value under prefix (None: absent/deleted)."""
        self._subs.setdefault(prefix, []).append(callback)

    def _notify(self, prefix: str, key: tuple, old: Any, new: Any) -> None:
        for callback in self._subs.get(prefix, ()):
            try:
                callback(key, old, new)
            except Exception:  # one broken subscriber must not undo a replicated change
                log.exception("replica subscriber %r failed on %s %r", callback, prefix, key)

    # ------------------------------------------------------------ anti-entropy

    def digest(self) -> dict[str, tuple[bytes, ...]]:
        """Per prefix, NBUCKETS hashes of the live versions' identities; all-empty prefixes are left out."""
        return {p: tuple(x.to_bytes(HASH_SIZE, "big") for x in acc) for p, acc in self._acc.items() if any(acc)}

    def bucket(self, prefix: str, b: int) -> list[tuple]:
        """Every record of one bucket, tombstones included, to send a peer whose digest differs there."""
        if type(b) is not int or not 0 <= b < NBUCKETS:
            raise ValueError(f"bucket must be in [0, {NBUCKETS})")
        table = self._objs.get(prefix, _EMPTY)
        keys = self._keys.get(prefix)
        return [] if keys is None else [(prefix, k, *table[k]) for k in keys[b]]

    def exchanged(self, peer: str, started_at: float) -> None:
        """Record that a round with peer, started at started_at (from `now`), ended with equal digests."""
        if peer != self.node and started_at > self._exchanges.get(peer, -math.inf):
            self._exchanges[peer] = started_at

    def collect(self, members: Iterable[str]) -> int:
        """Drop tombstones learned before every other member's last matching round; returns how many."""
        horizon = min((self._exchanges.get(m, -math.inf) for m in set(members) if m != self.node), default=math.inf)
        doomed = []
        for tk, seen_at in self._tombs.items():
            if seen_at >= horizon:
                break  # appended in seen_at order: the rest are younger
            doomed.append(tk)
        for prefix, key in doomed:
            self._drop(prefix, key)
        return len(doomed)

    def _drop(self, prefix: str, key: tuple) -> None:
        self._store.delete(STORE_PREFIX, (prefix, key))
        self._tombs.pop((prefix, key), None)
        table = self._objs[prefix]
        obj = table.pop(key)
        ckey = _canon_key(key)
        b = _bucket(ckey)
        if obj[0] is not None:
            self._acc[prefix][b] ^= _ident(ckey, obj)
            self._live[prefix] -= 1
        self._keys[prefix][b].discard(key)
        if not table:  # a prefix only tombstones ever lived in leaves nothing behind
            for d in (self._objs, self._acc, self._keys, self._live):
                del d[prefix]
