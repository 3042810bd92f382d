"""`vmq-admin trace client`: record one client's MQTT traffic for a while.

The admin socket answers once per request, so a trace runs until its timeout
or packet limit and returns the lines it recorded (VerneMQ streams them).

A trace taps live sessions without a hook on the hot path: the session's
`send` is shadowed by an instance attribute (every write goes through it)
and its decoder's class is swapped for a subclass whose `feed` records the
decoded packets. Both are undone when the trace ends, so an untraced session
runs exactly the normal code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gevent.event import Event

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import Decoder

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)
POLL = 0.05  # seconds between looks for new sessions of the traced client
RUNNING: set[Trace] = set()  # what `trace stop_all` ends


def describe(p, payload_limit: int) -> str:
    """One packet the way VerneMQ's tracer prints it."""
    if isinstance(p, P.Connect):
        return (f"CONNECT(c: {p.client_id}, v: {p.proto_level}, u: {p.username or ''}, "
                f"p: {'*' * len(p.password or b'')}, cs: {int(p.clean_start)}, ka: {p.keepalive})")
    if isinstance(p, P.Connack):
        return f"CONNACK(sp: {int(p.session_present)}, rc: {p.reason_code})"
    if isinstance(p, P.Publish):
        payload = p.payload[:payload_limit].decode(errors="replace")
        return (f"PUBLISH(d{int(p.dup)}, q{p.qos}, r{int(p.retain)}, m{p.packet_id or 0}, "
                f"\"{p.topic}\") with payload:\n    {payload}")
    if isinstance(p, P.Subscribe):
        topics = "".join(f"\n    q:{o.qos}, t: \"{f}\"" for f, o in p.topics)
        return f"SUBSCRIBE(m{p.packet_id}) with topics:{topics}"
    if isinstance(p, P.Unsubscribe):
        return f"UNSUBSCRIBE(m{p.packet_id}) with topics:" + "".join(f"\n    \"{t}\"" for t in p.topics)
    if isinstance(p, P.Suback | P.Unsuback):
        return f"{type(p).__name__.upper()}(m{p.packet_id}, qt{p.reason_codes})"
    if isinstance(p, P.Puback | P.Pubrec | P.Pubrel | P.Pubcomp):
        return f"{type(p).__name__.upper()}(m{p.packet_id})"
    if isinstance(p, P.Disconnect | P.Auth):
        return f"{type(p).__name__.upper()}(rc: {p.reason_code})"
    return f"{type(p).__name__.upper()}()"


class _Tap:
    """Shadows one session's send and decoder; `remove` restores both."""

    def __init__(self, session, emit: Callable[[str, object], None]) -> None:
        self.session = session
        self.emit = emit
        self.out = Decoder(version=session.proto_level or 4, server=False)
        decoder = session.decoder
        self.decoder = decoder
        self.original_class = type(decoder)
        original_send = session.send

        def send(data: bytes) -> None:
            self._record("SEND", self.out.feed, data)
            original_send(data)

        def feed(dec: Decoder, data: bytes) -> list:
            packets = self.original_class.feed(dec, data)
            for p in packets:
                emit("RECV", p)
            return packets

        session.send = send
        decoder.__class__ = type("TracedDecoder", (self.original_class,), {"__slots__": (), "feed": feed})

    def _record(self, direction: str, decode: Callable[[bytes], list], data: bytes) -> None:
        try:
            packets = decode(data)
        except Exception:  # a trace must never break the session it watches
            log.debug("trace: cannot decode %s data", direction, exc_info=True)
            return
        for p in packets:
            self.emit(direction, p)

    def remove(self) -> None:
        self.session.__dict__.pop("send", None)
        self.decoder.__class__ = self.original_class


class Trace:
    """Runs in the admin request's greenlet until `timeout` or `max_packets` packets were seen."""

    def __init__(self, node: Node, client_id: str, mountpoint: str = "", payload_limit: int = 1024,
                 max_packets: int = 0) -> None:
        self.node = node
        self.sid = (mountpoint, client_id)
        self.payload_limit = payload_limit
        self.max_packets = max_packets
        self.packets = 0
        self.lines: list[str] = []
        self.full = Event()
        self._taps: dict[object, _Tap] = {}

    def run(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        if not self._sessions():
            self.lines.append(f'No sessions found for client "{self.sid[1]}"')
        RUNNING.add(self)
        try:
            while not self.full.is_set() and time.monotonic() < deadline:
                self._attach_new()
                self.full.wait(min(POLL, max(0.0, deadline - time.monotonic())))
        finally:
            RUNNING.discard(self)
            for tap in self._taps.values():
                tap.remove()
        return self.lines

    def stop(self) -> None:
        self.lines.append("Trace stopped")
        self.full.set()

    def _sessions(self) -> list:
        return [s for s in self.node.sessions if s.sid == self.sid and not s.closed]

    def _attach_new(self) -> None:
        for session in self._sessions():
            if session not in self._taps:
                self.lines.append(f'New session with peer {session.peer[0]}:{session.peer[1]} found '
                                  f'for client "{self.sid[1]}"')
                self._taps[session] = _Tap(session, self._emit)

    def _emit(self, direction: str, packet) -> None:
        if self.full.is_set():
            return
        stamp = time.strftime("%H:%M:%S")
        self.lines.append(f'{stamp} MQTT {direction}: CID: "{self.sid[1]}" '
                          f'{describe(packet, self.payload_limit)}')
        self.packets += 1
        if self.max_packets and self.packets >= self.max_packets:
            self.full.set()


def stop_all() -> int:
    """End every running trace (each answers its caller with what it recorded); how many there were."""
    traces = list(RUNNING)
    for trace in traces:
        trace.stop()
    return len(traces)
