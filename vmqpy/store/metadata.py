"""The metadata store: prefix -> key -> value, in memory, written through to RocksDB.

Subscriptions, retained messages and sessions live here (DESIGN §1/§5). Reads
come from the memory map; every put/delete is one small RocksDB write (WAL, no
fsync), so a SIGKILLed node restarts with what it had. Values are encoded with
`pack`/`unpack` below, a tagged binary format that only rebuilds plain data and
dataclasses registered with `register`: nothing on disk can name code to run.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections.abc import Callable, Iterator
from typing import Any

from vmqpy.store.rocks import RocksDB, StoreError

log = logging.getLogger(__name__)

Callback = Callable[[Any, Any, Any], None]

# ---------------------------------------------------------------- value codec

_FORMAT = b"\x01"  # first byte of every record; a cluster layer adds format 2 (see docs/storage.md)
_DOUBLE = struct.Struct(">d")
_dataclasses: dict[str, type] = {}


def register(cls: type) -> type:
    """Allow instances of dataclass `cls` in stored values (usable as a decorator)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    _dataclasses[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def _len(n: int) -> bytes:
    return bytes([n]) if n < 255 else b"\xff" + n.to_bytes(4, "big")


def _enc(v: Any, out: list[bytes]) -> None:
    # bool before int: bool is an int subclass
    if v is None:
        out.append(b"N")
    elif v is True:
        out.append(b"T")
    elif v is False:
        out.append(b"F")
    elif isinstance(v, int):
        raw = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
        out += (b"i", _len(len(raw)), raw)
    elif isinstance(v, float):
        out += (b"f", _DOUBLE.pack(v))
    elif isinstance(v, str):
        raw = v.encode()
        out += (b"s", _len(len(raw)), raw)
    elif isinstance(v, bytes | bytearray | memoryview):
        raw = bytes(v)
        out += (b"b", _len(len(raw)), raw)
    elif isinstance(v, list | tuple):
        out += (b"l" if isinstance(v, list) else b"t", _len(len(v)))
        for item in v:
            _enc(item, out)
    elif isinstance(v, dict):
        out += (b"d", _len(len(v)))
        for k, item in v.items():
            _enc(k, out)
            _enc(item, out)
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        name = f"{type(v).__module__}.{type(v).__qualname__}"
        if _dataclasses.get(name) is not type(v):
            raise TypeError(f"dataclass {name} is not registered with vmqpy.store.metadata.register")
        out.append(b"c")
        _enc(name, out)
        _enc({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, out)
    else:
        raise TypeError(f"cannot store a {type(v).__name__}")


def pack(value: Any) -> bytes:
    """Encode plain data (None, bool, int, float, str, bytes, list, tuple, dict, registered dataclass)."""
    out = [_FORMAT]
    _enc(value, out)
    return b"".join(out)


def _dec_len(buf: bytes, i: int) -> tuple[int, int]:
    n = buf[i]
    if n < 255:
        return n, i + 1
    return int.from_bytes(buf[i + 1:i + 5], "big"), i + 5


def _dec(buf: bytes, i: int) -> tuple[Any, int]:
    tag = buf[i:i + 1]
    i += 1
    if tag == b"N":
        return None, i
    if tag == b"T":
        return True, i
    if tag == b"F":
        return False, i
    if tag == b"f":
        return _DOUBLE.unpack_from(buf, i)[0], i + 8
    if tag == b"c":
        name, i = _dec(buf, i)
        fields, i = _dec(buf, i)
        cls = _dataclasses.get(name)
        if cls is None:
            raise ValueError(f"stored dataclass {name} is not registered")
        return cls(**fields), i
    n, i = _dec_len(buf, i)
    if tag == b"i":
        return int.from_bytes(buf[i:i + n], "big", signed=True), i + n
    if tag == b"s":
        return buf[i:i + n].decode(), i + n
    if tag == b"b":
        return bytes(buf[i:i + n]), i + n
    if tag in (b"l", b"t"):
        items = []
        for _ in range(n):
            item, i = _dec(buf, i)
            items.append(item)
        return (items if tag == b"l" else tuple(items)), i
    if tag == b"d":
        d = {}
        for _ in range(n):
            k, i = _dec(buf, i)
            d[k], i = _dec(buf, i)
        return d, i
    raise ValueError(f"bad tag {tag!r} at offset {i - 1}")


def unpack(data: bytes) -> Any:
    """Decode what `pack` produced; raises ValueError on anything else."""
    if data[:1] != _FORMAT:
        raise ValueError(f"unknown record format {data[:1]!r}")
    try:
        value, end = _dec(data, 1)
    except (IndexError, UnicodeDecodeError, struct.error, TypeError) as e:
        raise ValueError(f"truncated or corrupt record: {e}") from e
    if end != len(data):
        raise ValueError("trailing bytes after record")
    return value


# ---------------------------------------------------------------- the store

class MetadataStore:
    """get/put/delete/fold/subscribe over prefixes; path None keeps it in memory only.

    Values handed out are the stored objects themselves: treat them as immutable
    and put a new value to change one.
    """

    def __init__(self, path: str | None) -> None:
        self._data: dict[str, dict[Any, Any]] = {}
        self._subs: dict[str, list[Callback]] = {}
        self._db = RocksDB(path) if path is not None else None
        if self._db is not None:
            self._load()

    def _load(self) -> None:
        # The whole map is read once at start: metadata is small next to messages.
        for raw_key, raw_value in self._db.scan(b""):
            try:
                prefix, key = unpack(raw_key)
                self._data.setdefault(prefix, {})[key] = unpack(raw_value)
            except (ValueError, TypeError) as e:
                raise StoreError(f"corrupt metadata record in {self._db.path}: {e}") from e

    def get(self, prefix: str, key: Any) -> Any | None:
        return self._data.get(prefix, {}).get(key)

    def put(self, prefix: str, key: Any, value: Any) -> None:
        if value is None:
            raise ValueError("None is not a storable value; use delete")
        table = self._data.setdefault(prefix, {})
        old = table.get(key)  # an unhashable key fails here, before anything is written
        record = pack(value)  # also without a disk: memory mode must refuse what disk would
        if self._db is not None:
            self._db.write([(pack((prefix, key)), record)])
        table[key] = value
        self._notify(prefix, key, old, value)

    def delete(self, prefix: str, key: Any) -> None:
        table = self._data.get(prefix, {})
        if key not in table:
            return
        if self._db is not None:
            self._db.write([(pack((prefix, key)), None)])
        self._notify(prefix, key, table.pop(key), None)

    def fold(self, prefix: str) -> Iterator[tuple[Any, Any]]:
        """The prefix's (key, value) pairs as of the call; callers may write meanwhile."""
        return iter(list(self._data.get(prefix, {}).items()))

    def prefixes(self) -> list[str]:
        """The prefixes that hold at least one record."""
        return [prefix for prefix, table in self._data.items() if table]

    def subscribe(self, prefix: str, callback: Callback) -> None:
        """Call callback(key, old, new) after every local change under prefix (new None: deleted)."""
        self._subs.setdefault(prefix, []).append(callback)

    def _notify(self, prefix: str, key: Any, old: Any, new: Any) -> None:
        for callback in self._subs.get(prefix, ()):
            try:
                callback(key, old, new)
            except Exception:  # one broken subscriber must not undo a stored change
                log.exception("metadata subscriber %r failed on %s %r", callback, prefix, key)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
