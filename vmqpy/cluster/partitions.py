"""Stored state where nr_of_workers puts it: moved when the count changes (docs/workers.md).

A single process keeps its state in `metadata.dir` and `message_store.dir`;
with N workers, worker K keeps the sessions (and their subscriptions and
offline messages) whose client id it owns and the retained messages whose topic
it owns (`accept.owner`) under data/worker-K/; retained messages, replicated to
every worker, move as plain records to the worker owning their topic, which
adopts them again. Other metadata (API keys, the replicated member list)
lives with worker 0. When the count changes, every record that now belongs
elsewhere is moved before any worker starts, so a client finds its persistent
session and offline messages on the worker it lands on.

Each session moves as: copy to its new partition (written), then delete from
the old one. A crash in between leaves both copies; the next start moves it
again, replacing the partial copy, so messages may be delivered twice but are
never lost. A marker file records the count the data was last arranged for,
so starts with an unchanged count open nothing.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
from collections.abc import Iterator

from vmqpy.admin.apikeys import PREFIX as API_KEYS
from vmqpy.broker.registry import SESSIONS, SUBSCRIPTIONS
from vmqpy.broker.retain import PREFIX as RETAIN
from vmqpy.cluster.accept import owner
from vmqpy.cluster.replica import STORE_PREFIX as REPLICA
from vmqpy.store.messages import MessageStore
from vmqpy.store.metadata import MetadataStore

log = logging.getLogger(__name__)

MARKER = "nr_of_workers"  # beside the metadata dir
PAGE = 1000  # offline messages copied per read


def worker_path(path: str, index: int) -> str:
    """`path` for worker `index`: data/meta -> data/worker-K/meta."""
    return os.path.join(os.path.dirname(path), f"worker-{index}", os.path.basename(path))


class Partition:
    """One (metadata, message store) pair, opened on first use."""

    def __init__(self, meta_dir: str, msgs_dir: str, sync: bool) -> None:
        self.dirs = (meta_dir, msgs_dir)
        self._sync = sync
        self._meta: MetadataStore | None = None
        self._msgs: MessageStore | None = None

    @property
    def meta(self) -> MetadataStore:
        if self._meta is None:
            self._meta = MetadataStore(self.dirs[0])
        return self._meta

    @property
    def msgs(self) -> MessageStore:
        if self._msgs is None:
            self._msgs = MessageStore(self.dirs[1], sync=self._sync)
        return self._msgs

    def empty(self) -> bool:
        return not self.meta.prefixes() and not self.msgs.queue_keys()

    def close(self) -> None:
        for store in (self._meta, self._msgs):
            if store is not None:
                store.close()
        self._meta = self._msgs = None


def repartition(cfg, count: int) -> None:
    """Move stored state to the partitions that own it under `count` workers (1: one process)."""
    meta_dir, msgs_dir = cfg["metadata.dir"], cfg["message_store.dir"]
    marker = os.path.join(os.path.dirname(meta_dir), MARKER)
    if _read_marker(marker) == count:
        return
    sync = cfg["message_store.sync"]
    targets = [Partition(meta_dir, msgs_dir, sync)] if count == 1 else [
        Partition(worker_path(meta_dir, k), worker_path(msgs_dir, k), sync) for k in range(count)]
    by_dirs = {t.dirs: t for t in targets}
    sources = [by_dirs.get(dirs) or Partition(*dirs, sync) for dirs in _on_disk(meta_dir, msgs_dir)]
    moved = 0
    try:
        for source in sources:
            moved += _move_out(source, targets, targets.index(source) if source in targets else None)
        for source in sources:
            if source not in targets:  # a partition the new count does not use: empty now
                if not source.empty():
                    raise RuntimeError(f"{source.dirs} still holds records after repartitioning")
                source.close()
                _remove(source.dirs)
    finally:
        for p in [*targets, *sources]:
            p.close()  # closing twice is a no-op
    _write_marker(marker, count)
    if moved:
        log.info("moved %d sessions and retained messages for nr_of_workers = %d", moved, count)


def _remove(dirs: tuple[str, str]) -> None:
    """Delete an emptied partition, and its worker-K directory once nothing else is in it."""
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
        parent = os.path.dirname(path)
        if re.fullmatch(r"worker-\d+", os.path.basename(parent)):
            try:
                os.rmdir(parent)
            except OSError:
                pass  # not empty (the other store, or files of the operator's)


def _read_marker(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _write_marker(path: str, count: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{count}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _on_disk(meta_dir: str, msgs_dir: str) -> list[tuple[str, str]]:
    """Every partition with a directory: the single process's and each worker-K's."""
    found = [(meta_dir, msgs_dir)] if os.path.isdir(meta_dir) or os.path.isdir(msgs_dir) else []
    indexes = set()
    for path in (meta_dir, msgs_dir):
        pattern = os.path.join(glob.escape(os.path.dirname(path)), "worker-*", glob.escape(os.path.basename(path)))
        for hit in glob.glob(pattern):
            m = re.fullmatch(r"worker-(\d+)", os.path.basename(os.path.dirname(hit)))
            if m:
                indexes.add(int(m.group(1)))
    return found + [(worker_path(meta_dir, k), worker_path(msgs_dir, k)) for k in sorted(indexes)]


def _owner_of(prefix: str, key, count: int) -> int:
    if count == 1:
        return 0
    if prefix in (SESSIONS, SUBSCRIPTIONS, RETAIN):
        return owner(key[0], key[1], count)  # (mountpoint, client id) or (mountpoint, topic)
    return 0  # API keys and whatever else: worker 0's


def _sids(source: Partition) -> Iterator[tuple[str, str]]:
    """Every subscriber id with state here: a session, subscriptions or stored messages."""
    sids = {sid for prefix in (SESSIONS, SUBSCRIPTIONS) for sid, _ in source.meta.fold(prefix)}
    sids.update(tuple(key.split("\x00", 1)) for key in source.msgs.queue_keys())
    return iter(sorted(sids))


def _move_out(source: Partition, targets: list[Partition], here: int | None) -> int:
    """Move what `source` holds that partition `here` (None: none) does not own; returns how many."""
    count = len(targets)
    moved = 0
    for sid in _sids(source):
        k = _owner_of(SESSIONS, sid, count)
        if k != here:
            _move_session(sid, source, targets[k])
            moved += 1
    moved += _unreplicate(source, targets)
    for prefix in source.meta.prefixes():
        if prefix in (SESSIONS, SUBSCRIPTIONS):
            continue
        for key, value in source.meta.fold(prefix):
            k = _owner_of(prefix, key, count)
            if k != here:
                targets[k].meta.put(prefix, key, value)
                source.meta.delete(prefix, key)
                if prefix == RETAIN:
                    moved += 1
    return moved


def _unreplicate(source: Partition, targets: list[Partition]) -> int:
    """Retained messages and API keys in a worker's replica (cluster/metadata.py) become plain
    records of the partition owning them (API keys: worker 0's), which adopts them into its replica
    when it starts (every worker held them all: one copy is kept). Returns the retained ones moved."""
    moved = 0
    for key, obj in list(source.meta.fold(REPLICA)):
        prefix, item = key
        if prefix not in (RETAIN, API_KEYS):
            continue
        if obj[0] is not None:
            plain = tuple(item) if prefix == RETAIN else item[0]
            targets[_owner_of(prefix, plain, len(targets))].meta.put(prefix, plain, obj[0])
            moved += prefix == RETAIN
        source.meta.delete(REPLICA, key)
    return moved


def _move_session(sid: tuple[str, str], source: Partition, target: Partition) -> None:
    key = f"{sid[0]}\x00{sid[1]}"  # Queue.key
    target.msgs.delete_queue(key)  # a partial copy from an interrupted move
    after = None
    while rows := source.msgs.read(key, PAGE, after):
        for seq, msg, flags in rows:
            target.msgs.append(key, msg, flags)
            after = seq
        target.msgs.flush()
    target.msgs.flush()
    for prefix in (SESSIONS, SUBSCRIPTIONS):
        value = source.meta.get(prefix, sid)
        if value is not None:
            target.meta.put(prefix, sid, value)
    for prefix in (SESSIONS, SUBSCRIPTIONS):
        source.meta.delete(prefix, sid)
    source.msgs.delete_queue(key)
    source.msgs.flush()
