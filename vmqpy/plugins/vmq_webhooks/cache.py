"""The auth answer cache (VerneMQ's vmq_webhooks_cache).

An ok-answer of auth_on_register/publish/subscribe(_m5) that came with
`cache-control: max-age=N` is reused for N seconds for the same endpoint, hook
and request body. As in VerneMQ, the payload and the peer port are left out of
the key and a payload modifier is never replayed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ujson

from vmqpy.plugins.hooks import OK

_UNKEYED = ("payload", "peer_port")
_SWEEP_INTERVAL = 60.0  # s; bounds memory held by entries nobody asks for again


class AuthCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._stats: Counter[tuple[str, str, str]] = Counter()  # (stat, endpoint, hook) -> count
        self._next_sweep = clock() + _SWEEP_INTERVAL

    @staticmethod
    def key(body: dict) -> str:
        return ujson.dumps({k: v for k, v in body.items() if k not in _UNKEYED})

    def lookup(self, endpoint: str, hook: str, key: str) -> Any:
        """The cached answer, or None."""
        entry = self._entries.get((endpoint, hook, key))
        if entry is not None and entry[0] <= self._clock():
            del self._entries[(endpoint, hook, key)]
            entry = None
        self._stats["misses" if entry is None else "hits", endpoint, hook] += 1
        return None if entry is None else entry[1]

    def insert(self, endpoint: str, hook: str, key: str, max_age: int, answer: Any) -> None:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        if isinstance(answer, tuple):
            mods = {k: v for k, v in answer[1].items() if k != "payload"}
            answer = (OK, mods) if mods else OK
        self._entries[(endpoint, hook, key)] = (now + max_age, answer)

    def stats(self) -> list[dict]:
        """Rows of `vmq-admin webhooks cache show`: stat (entries/hits/misses), endpoint, hook, value."""
        self._sweep(self._clock())
        counts = self._stats + Counter(("entries", ep, hook) for ep, hook, _ in self._entries)
        return [{"stat": stat, "endpoint": ep, "hook": hook, "value": n}
                for (stat, ep, hook), n in sorted(counts.items())]

    def reset_stats(self) -> None:
        self._stats.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._stats.clear()

    def _sweep(self, now: float) -> None:
        self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        self._next_sweep = now + _SWEEP_INTERVAL
