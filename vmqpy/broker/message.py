"""The routed message: decoded once, shared by every queue it is delivered to."""

from __future__ import annotations

import os
import time

_ref_prefix = os.urandom(8)
_ref_counter = 0


def new_ref() -> bytes:
    """A node-unique 16-byte message reference (random prefix + counter)."""
    global _ref_counter
    _ref_counter += 1
    return _ref_prefix + _ref_counter.to_bytes(8, "big")


class Msg:
    """One published message as the broker routes it.

    `topic` is what clients see; the listener's `mountpoint` is kept apart and
    routing keys on both. `expiry` is an absolute wall-clock deadline (epoch
    seconds, so it survives a restart) or None. `frames` caches encoded PUBLISH frames per delivery shape
    so a fan-out encodes once (see Session.encode_publish); it stays None, and
    nothing is cached, for a message routed to one subscriber. `received` is
    the v3 QoS 0 PUBLISH frame it arrived in, forwarded byte for byte to v3
    QoS 0 subscribers; a hook that rewrites the message drops it.
    """

    __slots__ = ("_ref", "topic", "payload", "qos", "retain", "properties", "mountpoint",
                 "expiry", "sender", "frames", "received")

    def __init__(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                 properties: dict | None = None, mountpoint: str = "",
                 expiry: float | None = None, sender: tuple[str, str] | None = None,
                 ref: bytes | None = None, received: bytes | None = None) -> None:
        self._ref = ref
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.mountpoint = mountpoint
        self.expiry = expiry
        self.sender = sender  # subscriber id (mountpoint, client_id) of the publisher
        self.frames: dict | None = None
        self.received = received  # the v3 QoS 0 frame it came in, while still exact

    @property
    def ref(self) -> bytes:
        """The message's node-unique reference, made on first use: only stored messages need one."""
        ref = self._ref
        if ref is None:
            ref = self._ref = new_ref()
        return ref

    def expired(self, now: float | None = None) -> bool:
        return self.expiry is not None and (now or time.time()) >= self.expiry

    def __repr__(self) -> str:
        return f"Msg({self.topic!r}, {len(self.payload)}B, qos={self.qos}, retain={self.retain})"
