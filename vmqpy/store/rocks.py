"""The thin RocksDB adapter: the only module that imports rocksdict.

Keys and values are bytes (rocksdict raw mode, so the files stay readable by
any RocksDB tool). rocksdict holds the GIL during every call, so callers batch
their writes into one `write()` per loop turn instead of using threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import rocksdict


class StoreError(Exception):
    """A data directory that cannot be opened, read or written; names the path."""


def successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with prefix (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class RocksDB:
    """One RocksDB directory opened read-write; every failure raises StoreError."""

    def __init__(self, path: str, sync: bool = False) -> None:
        self.path = path
        _check_dir(path)
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_paranoid_checks(True)
        opts.set_keep_log_file_num(4)  # the info LOG rotates on every open
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)  # refcount lookups of new refs mostly miss
        opts.set_block_based_table_factory(table)
        try:
            self._db = rocksdict.Rdict(path, opts)
        except Exception as e:  # rocksdict raises bare Exception for IO/corruption/lock
            raise StoreError(f"cannot open RocksDB at {path}: {e}") from e
        self._wopts = rocksdict.WriteOptions()
        self._wopts.sync = sync

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except Exception as e:
            raise StoreError(f"read from {self.path} failed: {e}") from e

    def write(self, ops: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value bytes) and deletes (value None) atomically in one WriteBatch."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in ops:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        try:
            self._db.write(batch, self._wopts)
        except Exception as e:
            raise StoreError(f"write to {self.path} failed: {e}") from e

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Key order iteration over keys starting with prefix, from start (a key >= prefix) on."""
        ropts = rocksdict.ReadOptions()
        upper = successor(prefix)
        if upper is not None:
            ropts.set_iterate_upper_bound(upper)
        it = self._db.iter(ropts)
        it.seek(start or prefix)
        while it.valid():
            yield it.key(), it.value()
            it.next()

    def last_key(self, prefix: bytes) -> bytes | None:
        """The greatest key starting with prefix, or None."""
        # No iterate_lower_bound: rocksdict 0.3.29 then finds nothing with seek_for_prev.
        it = self._db.iter(rocksdict.ReadOptions())
        upper = successor(prefix)
        if upper is None:
            it.seek_to_last()
        else:
            it.seek_for_prev(upper)
        if it.valid() and it.key().startswith(prefix):
            return it.key()
        return None

    def compact(self) -> None:
        """Flush the memtable and compact everything, dropping deleted data from disk."""
        self._db.compact_range(None, None)

    def disk_bytes(self) -> int:
        """Bytes held by table files and write-ahead logs."""
        total = 0
        for entry in os.scandir(self.path):
            if entry.name.endswith((".sst", ".log")):
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:  # removed by a background compaction meanwhile
                    pass
        return total

    def close(self) -> None:
        self._db.close()


def _check_dir(path: str) -> None:
    """Refuse what RocksDB would silently replace with an empty database."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"cannot open RocksDB at {path}: exists and is not a directory")
    if os.path.isdir(path):
        try:
            names = os.listdir(path)
        except OSError as e:
            raise StoreError(f"cannot open RocksDB at {path}: {e.strerror}") from e
        if names and "CURRENT" not in names:
            raise StoreError(f"cannot open RocksDB at {path}: directory is not empty but has no "
                             "CURRENT file (not a RocksDB directory, or damaged); refusing to "
                             "start an empty store over it")
