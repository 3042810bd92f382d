"""One bridge: a subscriber inside the local broker on one side, an MQTT client of the remote
broker on the other.

Out: the bridge subscribes locally (as an internal subscriber of the registry, no session) to
each `out`/`both` pattern under its local prefix; `enqueue` (called by the router, never blocking)
puts what matches into the outgoing buffer, and the sender writes it to the remote broker as the
window (`outgoing_batch_size` unacknowledged messages) allows.
In: on every connect it subscribes on the remote broker to each `in`/`both` pattern under its
remote prefix and publishes what arrives into the local broker under the local prefix.

Loop prevention: local subscriptions are no-local, so what the bridge published locally is not
sent back out of it; towards the remote broker, v5 subscriptions are no-local and v3 bridges
announce themselves with `try_private` (protocol level | 0x80), which mosquitto and vmqpy
answer by not sending a bridge its own messages back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent import ssl
from gevent.event import Event

from vmqpy.broker.message import Msg
from vmqpy.broker.router import Subscription
from vmqpy.mqtt import codec
from vmqpy.mqtt import packets as P
from vmqpy.mqtt.topic import matches
from vmqpy.plugins.vmq_bridge.buffer import DiskBuffer, Entry, MemoryBuffer
from vmqpy.plugins.vmq_bridge.client import Connection, ConnectRefused, open_connection, tls_context
from vmqpy.plugins.vmq_bridge.settings import BridgeSettings, join, swap

log = logging.getLogger(__name__)

TOPIC_CACHE = 10_000  # local topics whose remote topic is remembered
MAX_BACKOFF = 4  # the wait before a reconnect doubles per failed attempt, up to this many restart_timeouts
_DIAL_ERRORS = (OSError, ssl.SSLError, ConnectRefused, codec.MQTTError, EOFError)
# v5 properties that belong to one hop, not to the message
_HOP_PROPERTIES = ("topic_alias", "subscription_identifier")
COUNTERS = {
    "out": "The number of QoS {} messages the bridge has (re)-published",
    "in": "The number of QoS {} messages the bridge has consumed",
}


def metric(name: str, what: str) -> str:
    """The metric `NAME_vmq_bridge_WHAT` of bridge NAME (a `-` in NAME becomes `_`: Prometheus names)."""
    return f"{name.replace('-', '_')}_vmq_bridge_{what}"


def counter_names(name: str) -> dict[str, str]:
    """VerneMQ's per-bridge counters (`<name>_vmq_bridge_publish_out_0` ...) with their descriptions."""
    return {metric(name, f"publish_{way}_{q}"): text.format(q) for way, text in COUNTERS.items() for q in range(3)}


class Bridge:
    def __init__(self, node: Any, settings: BridgeSettings) -> None:
        self.node = node
        self.settings = settings
        opts = settings.opts
        self.name = settings.name
        self.sid = (opts["mountpoint"], f"vmq_bridge\x00{settings.name}")  # no client can have this id
        self.tls = tls_context(opts) if settings.transport == "ssl" else None
        self.buffer: MemoryBuffer | DiskBuffer = (
            DiskBuffer(opts["queue_dir"], opts["outgoing_batch_size"], node.config["message_store.sync"])
            if opts["persistent_queue"]
            else MemoryBuffer())
        self.limit: int = opts["max_outgoing_buffered_messages"]
        self.window: int = opts["outgoing_batch_size"]
        ratio = opts["pubrel_queue_ratio"]
        self.pubrel_limit = self.limit * ratio // 100 if ratio and self.limit else 0
        self.outs = [(join(t.local_prefix, t.pattern), t) for t in settings.out_topics()]
        self.ins = [(join(t.remote_prefix, t.pattern), t) for t in settings.in_topics()]
        self.conn: Connection | None = None
        self.connected = False
        self.subscribed = False  # the remote broker answered our SUBSCRIBE (or there is nothing to subscribe)
        self.inflight: dict[int, Entry] = {}  # packet id -> entry sent, awaiting PUBACK / PUBREC, PUBCOMP
        self.released: set[int] = set()       # QoS 2 ids between PUBREC and PUBCOMP
        self.awaiting_rel: set[int] = set()   # inbound QoS 2 ids between PUBLISH and PUBREL
        self.dropped = 0
        self.reconnects = 0
        self.last_error = ""
        self._ever_connected = False  # later connects count as reconnects
        self._next_pid = 0
        self._wake = Event()
        self._last_recv = 0.0
        self._counters = node.metrics.counters
        self._out = [metric(self.name, f"publish_out_{q}") for q in range(3)]
        self._in = [metric(self.name, f"publish_in_{q}") for q in range(3)]
        self._runner: gevent.Greenlet | None = None
        self._remote_topics: dict[str, str] = {}  # local topic -> remote topic

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        registry = self.node.registry
        registry.internal[self.sid] = self
        for filt, spec in self.outs:
            registry.subscribe(self.sid, filt, Subscription(spec.qos, no_local=True, retain_as_published=spec.retain))
        self._runner = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.kill()
        registry = self.node.registry
        for filt, _ in self.outs:
            registry.unsubscribe(self.sid, filt)
        registry.internal.pop(self.sid, None)
        self.buffer.close()

    # -- the local side: the router hands us what our out-subscriptions match ----------------------------
    def enqueue(self, msg: Msg, qos: int, retain: bool, sub_ids: tuple = (), group: str | None = None) -> None:
        remote_topic = self._remote_topics.get(msg.topic)
        if remote_topic is None:
            remote_topic = self._remote_topic(msg.topic)
            if remote_topic is None:
                return
        # 0: nothing is buffered while the remote is unreachable, and no bound while it is reachable
        if len(self.buffer) >= self.limit and (self.limit or not self.connected):
            self.dropped += 1
            self._counters["vmq_bridge_dropped_msgs"] += 1
            return
        props = msg.properties
        if props and self.settings.version == 5:
            props = {k: v for k, v in props.items() if k not in _HOP_PROPERTIES} or None
        else:
            props = None
        self.buffer.put(Msg(remote_topic, msg.payload, qos, retain, props), qos, retain)
        self._wake.set()

    def _remote_topic(self, topic: str) -> str | None:
        """`topic` as the remote broker gets it (the first out-pattern it matches decides), cached."""
        spec = next((s for f, s in self.outs if matches(f, topic)), None)
        if spec is None:
            return None
        if len(self._remote_topics) >= TOPIC_CACHE:
            self._remote_topics.clear()
        remote = self._remote_topics[topic] = swap(spec.local_prefix, spec.remote_prefix, topic)
        return remote

    # -- the remote side ----------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while True:
            try:
                conn, connack = open_connection(self.settings, self.tls, self.node.config["max_message_size"])
            except _DIAL_ERRORS as e:
                failures += 1
                self._failed(f"cannot connect: {e}", failures)
                continue
            failures = 0
            self._serve(conn, connack)
            self._failed(self.last_error, 1)

    def _failed(self, why: str, failures: int) -> None:
        if why != self.last_error or failures == 1:
            log.warning("bridge %s to %s:%s: %s; retrying", self.name, self.settings.host, self.settings.port, why)
        self.last_error = why
        delay = max(self.settings.opts["restart_timeout"], 0.1) * min(2 ** (failures - 1), MAX_BACKOFF)
        gevent.sleep(delay)

    def _serve(self, conn: Connection, connack: P.Connack) -> None:
        """Until the connection fails: resend what the remote has not acknowledged, subscribe, then
        read and send."""
        self.conn, self.connected, self.subscribed = conn, True, not self.ins
        self.reconnects += self._ever_connected
        self._ever_connected = True
        self._last_recv = time.monotonic()
        log.info("bridge %s connected to %s:%s", self.name, self.settings.host, self.settings.port)
        if not connack.session_present:  # the remote forgot what was in flight: send it again, anew
            self.inflight.clear()
            self.released.clear()
            self.awaiting_rel.clear()
            self.buffer.rewind()
        workers = [gevent.spawn(_until_error, fn) for fn in (self._reader, self._sender, self._pinger)]
        try:
            self._resend(connack.session_present)
            self._subscribe_remote()
            self._wake.set()
            gevent.joinall(workers, count=1)
            self.last_error = _why(next((w.value for w in workers if w.ready()), None))
        except (OSError, ssl.SSLError) as e:
            self.last_error = _why(e)
        finally:
            self.connected = self.subscribed = False
            gevent.killall(workers)
            conn.close()
            self.conn = None
            self.buffer.flush()

    def _resend(self, session_present: bool) -> None:
        """The remote kept our session: what it has not acknowledged goes again, same ids, in order."""
        if not session_present or not self.inflight:
            return
        frames = []
        for pid in sorted(self.inflight, key=lambda p: self.inflight[p].seq):
            if pid in self.released:
                frames.append(codec.encode(P.Pubrel(pid), self.settings.version))
            else:
                frames.append(self._frame(self.inflight[pid], pid, True))
        self.conn.send(b"".join(frames))

    def _subscribe_remote(self) -> None:
        if not self.ins:
            return
        v5 = self.settings.version == 5
        topics = [(f, P.SubOpts(s.qos, no_local=v5, retain_as_published=s.retain)) for f, s in self.ins]
        self.conn.send_packet(P.Subscribe(self._pid(), topics))

    def _pid(self) -> int:
        """The next packet id not in flight."""
        while True:
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid not in self.inflight:
                return self._next_pid

    def _frame(self, entry: Entry, pid: int, dup: bool = False) -> bytes:
        msg = entry.msg
        if entry.qos and self.settings.version < 5:
            return codec.publish_v3(msg.topic.encode(), msg.payload, entry.qos, entry.retain, dup, pid)
        frame, at = codec.publish_frame(msg.topic.encode(), msg.payload, entry.qos, entry.retain, msg.properties,
                                        self.settings.version)
        if at >= 0:
            frame = bytes([frame[0] | (0x08 if dup else 0)]) + frame[1:at] + pid.to_bytes(2, "big") + frame[at + 2:]
        return frame

    def _room(self) -> int:
        room = self.window - len(self.inflight)
        if self.pubrel_limit:
            room = min(room, self.pubrel_limit - len(self.released))
        return room

    def _sender(self) -> None:
        conn, buffer, counters, out = self.conn, self.buffer, self._counters, self._out
        while True:
            self._wake.wait()
            self._wake.clear()
            while buffer.unsent() and self._room() > 0:
                entries = buffer.take(self._room())
                frames = []
                for entry in entries:
                    pid = 0
                    if entry.qos:
                        pid = self._pid()
                        self.inflight[pid] = entry
                    frames.append(self._frame(entry, pid))
                    counters[out[entry.qos]] += 1
                conn.send(b"".join(frames))
                for entry in entries:
                    if not entry.qos:
                        buffer.done(entry)
            buffer.flush()

    def _pinger(self) -> None:
        keepalive = self.settings.opts["keepalive_interval"]
        if not keepalive:
            Event().wait()  # no keepalive: no pings, and silence is fine
        ping = codec.encode(P.Pingreq(), self.settings.version)
        while True:
            gevent.sleep(keepalive)
            if time.monotonic() - self._last_recv > keepalive * 1.5:
                raise TimeoutError(f"no answer from the remote broker for {keepalive * 1.5:g} s")
            self.conn.send(ping)

    def _reader(self) -> None:
        conn = self.conn
        while True:
            packets = conn.recv()
            self._last_recv = time.monotonic()
            acks: list[bytes] = []
            losses = self._losses()
            for packet in packets:
                handler = _HANDLERS.get(packet.type)
                if handler is None:
                    raise codec.ProtocolError(f"unexpected {codec.NAMES[packet.type]} from the remote broker")
                handler(self, packet, acks)
            self.buffer.flush()
            if acks and self._settled(losses):
                conn.send(b"".join(acks))

    # -- packets from the remote broker ------------------------------------
    def _on_publish(self, p: P.Publish, acks: list[bytes]) -> None:
        version = self.settings.version
        if p.qos == 2:
            acks.append(codec.encode(P.Pubrec(p.packet_id), version))
            if p.packet_id in self.awaiting_rel:
                return  # sent again before our PUBREC arrived: routed once already
            self.awaiting_rel.add(p.packet_id)
        elif p.qos == 1:
            acks.append(codec.encode(P.Puback(p.packet_id), version))
        spec = next((s for f, s in self.ins if matches(f, p.topic)), None)
        if spec is None:
            return  # the remote sent what we did not subscribe to (or no longer do)
        self._counters[self._in[p.qos]] += 1
        props = p.properties
        if props:
            props = {k: v for k, v in props.items() if k not in _HOP_PROPERTIES} or None
        self.node.publish(Msg(swap(spec.remote_prefix, spec.local_prefix, p.topic), p.payload, p.qos,
                              p.retain and spec.retain, props, self.sid[0], None, self.sid))

    def _on_pubrel(self, p: P.Pubrel, acks: list[bytes]) -> None:
        self.awaiting_rel.discard(p.packet_id)
        acks.append(codec.encode(P.Pubcomp(p.packet_id), self.settings.version))

    def _on_puback(self, p: P.Puback, acks: list[bytes]) -> None:
        entry = self.inflight.get(p.packet_id)
        if entry is not None and entry.qos == 1:
            del self.inflight[p.packet_id]
            self.buffer.done(entry)
            self._wake.set()

    def _on_pubrec(self, p: P.Pubrec, acks: list[bytes]) -> None:
        entry = self.inflight.get(p.packet_id)
        if entry is None or entry.qos != 2:
            return
        if p.reason_code >= 0x80:  # v5: the remote refused it; nothing more will come for this id
            self._on_pubcomp(P.Pubcomp(p.packet_id), acks)
            return
        self.released.add(p.packet_id)
        acks.append(codec.encode(P.Pubrel(p.packet_id), self.settings.version))

    def _on_pubcomp(self, p: P.Pubcomp, acks: list[bytes]) -> None:
        entry = self.inflight.pop(p.packet_id, None)
        if entry is not None:
            self.released.discard(p.packet_id)
            self.buffer.done(entry)
            self._wake.set()

    def _on_suback(self, p: P.Suback, acks: list[bytes]) -> None:
        self.subscribed = True
        refused = [f for (f, _), code in zip(self.ins, p.reason_codes, strict=False) if code >= 0x80]
        if refused:
            log.warning("bridge %s: the remote broker refused the subscription(s) %s", self.name, refused)

    def _on_ignored(self, p: P.Packet, acks: list[bytes]) -> None:
        pass

    def _on_disconnect(self, p: P.Disconnect, acks: list[bytes]) -> None:
        raise EOFError(f"DISCONNECT {p.reason_code:#04x} from the remote broker")

    # -- what the local broker must have stored before we acknowledge --------------------------
    def _losses(self) -> int:
        cluster = self.node.cluster
        return cluster.links.losses if cluster is not None else 0

    def _settled(self, losses: int) -> bool:
        """The local broker holds what this batch published (store flushed, forwarded to the other
        workers and stored there) before the batch's acks go to the remote broker. False: a worker
        could not confirm; the connection ends unacknowledged and the remote sends them again."""
        node = self.node
        if node.msg_store.pending():
            node.msg_store.flush()
        cluster = node.cluster
        if cluster is None:
            return True
        cluster.links.flush()
        if cluster.links.confirm(losses):
            return True
        raise ConnectionError("another worker did not confirm storing the bridged publishes")

    # -- vmq-admin bridge show ----------------------------------------------
    def info(self) -> dict[str, Any]:
        s = self.settings
        return {"name": self.name, "endpoint": f"{s.host}:{s.port}", "buffer size": len(self.buffer),
                "buffer max": self.limit, "buffer dropped msgs": self.dropped,
                "MQTT process mailbox len": len(self.inflight),
                "status": ("connected" if self.subscribed else "subscribing") if self.connected else "connecting",
                "reconnects": self.reconnects,
                "messages in": sum(self._counters[k] for k in self._in),
                "messages out": sum(self._counters[k] for k in self._out)}


def _until_error(fn: Any) -> BaseException:
    """Run one of a connection's loops; the error that ended it is its value (gevent would print it)."""
    try:
        fn()
    except Exception as e:
        return e
    return EOFError("connection closed")


def _why(e: BaseException | None) -> str:
    if e is None:
        return "connection closed"
    return f"{type(e).__name__}: {e}" if not isinstance(e, EOFError) else str(e)


_HANDLERS = {
    P.PUBLISH: Bridge._on_publish, P.PUBACK: Bridge._on_puback, P.PUBREC: Bridge._on_pubrec,
    P.PUBREL: Bridge._on_pubrel, P.PUBCOMP: Bridge._on_pubcomp, P.SUBACK: Bridge._on_suback,
    P.UNSUBACK: Bridge._on_ignored, P.PINGRESP: Bridge._on_ignored, P.DISCONNECT: Bridge._on_disconnect,
}
