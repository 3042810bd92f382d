"""Plumtree broadcast (Leitão et al., "Epidemic Broadcast Trees"), as a pure state machine.

Every peer starts eager. A message is pushed in full to the eager peers and
announced (`ihave`, its id only) to the lazy ones. Whoever gets a message a
second time tells its sender to `prune` (the sender becomes lazy for it): the
eager links left form a spanning tree, so a change crosses each link about
once. A peer that hears of a message only by announcement, and does not get
it within `graft_after` seconds, `graft`s the announcer: asks it for the
message and makes the link eager again, which repairs the tree after a
failure. The caller sends what `broadcast`, `receive` and `tick` return:
(peer, message) pairs, messages being plain tuples for the wire.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

Out = list[tuple[str, tuple]]
KEEP = 10_000  # messages remembered (to answer grafts, to spot duplicates)


class Plumtree:
    def __init__(self, me: str, graft_after: float = 1.0) -> None:
        self.me = me
        self.graft_after = graft_after
        self.eager: set[str] = set()
        self.lazy: set[str] = set()
        self._seen: OrderedDict[Hashable, Any] = OrderedDict()
        self._missing: dict[Hashable, tuple[float, list[str]]] = {}  # id -> (since, who announced it)

    def peers(self, current: Iterable[str]) -> None:
        """Follow the peer set: new peers start eager, gone ones are forgotten."""
        current = set(current) - {self.me}
        self.eager = (self.eager & current) | (current - self.lazy)
        self.lazy &= current

    def broadcast(self, mid: Hashable, payload: Any) -> Out:
        """A message made here: the pushes and announcements to send."""
        self._remember(mid, payload)
        return self._spread(mid, payload, None)

    def receive(self, sender: str, message: tuple, now: float) -> tuple[Any | None, Out]:
        """(payload to deliver or None, what to send) for one message from `sender`."""
        kind = message[0]
        if kind == "gossip":
            _, mid, payload = message
            if mid in self._seen:
                self._make_lazy(sender)
                return None, [(sender, ("prune",))]
            self._remember(mid, payload)
            self._missing.pop(mid, None)
            self._make_eager(sender)
            return payload, self._spread(mid, payload, sender)
        if kind == "prune":
            self._make_lazy(sender)
        elif kind == "ihave":
            mid = message[1]
            if mid not in self._seen:
                since, announcers = self._missing.get(mid, (now, []))
                self._missing[mid] = (since, [*announcers, sender])
        elif kind == "graft":
            self._make_eager(sender)
            if message[1] in self._seen:
                return None, [(sender, ("gossip", message[1], self._seen[message[1]]))]
        else:
            raise ValueError(f"unknown plumtree message {kind!r}")
        return None, []

    def tick(self, now: float) -> Out:
        """Graft one announcer of each message announced but not received for graft_after seconds."""
        out: Out = []
        for mid, (since, announcers) in list(self._missing.items()):
            if now - since >= self.graft_after and announcers:
                peer = announcers[0]
                self._make_eager(peer)
                out.append((peer, ("graft", mid)))
                self._missing[mid] = (now, announcers[1:] or announcers)
        return out

    def _spread(self, mid: Hashable, payload: Any, sender: str | None) -> Out:
        out: Out = [(p, ("gossip", mid, payload)) for p in sorted(self.eager) if p != sender]
        return out + [(p, ("ihave", mid)) for p in sorted(self.lazy) if p != sender]

    def _remember(self, mid: Hashable, payload: Any) -> None:
        self._seen[mid] = payload
        if len(self._seen) > KEEP:
            self._seen.popitem(last=False)

    def _make_lazy(self, peer: str) -> None:
        self.eager.discard(peer)
        self.lazy.add(peer)

    def _make_eager(self, peer: str) -> None:
        self.lazy.discard(peer)
        self.eager.add(peer)
