"""The connection: one MQTT connection from CONNECT to close.

A plain TCP connection holds no greenlet while it is idle (DESIGN §3): a libev
watcher on its socket fires when bytes arrive; once the loop turn's watchers
have run, `Wakeups` reads up to 64 KiB of each, decodes every complete frame
and, when nothing in the batch can block, handles it right there in the hub;
otherwise a pooled reader greenlet does (`_resume`). Either way the batch ends
with the message store flushed, the messages it routed written (one write per
subscriber, see queue.Dispatcher), what it forwarded to other workers written,
and its acks sent with one write. One recv per turn of the loop: a publisher that always has
more does not starve the others. TLS and WebSocket transports buffer bytes the
watcher cannot see, so a greenlet keeps reading those for the connection's life.

`send` never blocks its caller, whichever greenlet that is: it tries a
non-blocking send and only what the socket does not take waits in `_out` for
a writer greenlet; while that backlog exists the queue holds its deliveries
back, where its limits apply. Keep alive and the CONNECT timeout are one libev
timer per connection. CONNECT handling lives in connect.py, the AUTH exchange
in auth.py.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from typing import TYPE_CHECKING

import gevent
from gevent import socket as gsocket
from gevent.hub import get_hub
from greenlet import getcurrent

from vmqpy.broker import auth, connect
from vmqpy.broker.errors import Disconnect
from vmqpy.broker.message import Msg
from vmqpy.broker.router import Subscription
from vmqpy.broker.wakeups import readers, wakeups
from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import (
    Decoder,
    MalformedPacket,
    MQTTError,
    UnsupportedProtocolVersion,
    ack_frame,
    encode,
    publish_frame,
    publish_v3,
)
from vmqpy.mqtt.topic import parse_shared, valid_filter

if TYPE_CHECKING:
    from vmqpy.broker.aliases import InboundAliases, OutboundAliases
    from vmqpy.broker.node import Node
    from vmqpy.broker.overload import Throttle
    from vmqpy.broker.queue import Out, Queue

log = logging.getLogger(__name__)

RECV_SIZE = 65536
_READ, _WRITE = 1, 2  # libev io watcher events
_PUBACK, _PUBREC, _PUBCOMP = P.PUBACK << 4, P.PUBREC << 4, P.PUBCOMP << 4


class Session:
    # "__dict__" stays empty unless something shadows a method (admin/trace.py shadows `send`).
    __slots__ = ("node", "sock", "peer", "listener", "mountpoint", "decoder", "proto_level", "client_id",
                 "assigned_id", "sid", "username", "queue", "will", "expiry", "keepalive", "connected", "registered_at",
                 "closed", "clean_disconnect", "inflight_count", "receive_max", "client_max_packet",
                 "in_quota", "aliases_in", "aliases_out", "throttle", "auth", "auth_method", "_qos1_in",
                 "_acks", "_rel_new", "_losses", "_suppress_will", "_reader", "_writable", "_timer", "_reading",
                 "_out", "_done", "_window", "session_ended", "_raw", "bridge", "bytes_in", "bytes_out",
                 "authz_plugins", "_lifetime", "preauth", "started_at", "counters",
                 "__dict__")

    def __init__(self, node: Node, sock: socket.socket, peer: tuple, listener) -> None:
        self.node = node
        self.sock = sock
        self.peer = (peer[0], peer[1]) if peer else ("", 0)
        self.preauth: str | None = peer[2] if peer and len(peer) > 2 else None  # username a proxy vouched for
        self.listener = listener
        self.mountpoint: str = listener.opts.get("mountpoint", "") or ""
        self.authz_plugins: tuple[str, ...] = listener.opts.get("authz_plugins", ())  # empty: every plugin
        self._lifetime = None  # max_connection_lifetime's timer
        self.started_at = int(time.time() * 1000)  # session show --session_started_at (ms)
        self.counters = node.metrics.counters  # MQTT 5 sessions count in metrics.counters5 (from CONNECT)
        self.decoder = Decoder(max_packet_size=node.config["max_message_size"])
        self.proto_level = 0
        self.bridge = False  # CONNECT with try_private (level | 0x80): a bridge, never sent its own publishes
        self.client_id = ""
        self.assigned_id = False
        self.sid: tuple[str, str] = (self.mountpoint, "")
        self.username: str | None = None
        self.queue: Queue | None = None
        self.will: P.Will | None = None
        self.expiry: float | None = 0  # session expiry seconds; None = never
        self.keepalive = 0
        self.connected = False
        self.registered_at = 0.0  # wall time of the CONNACK: the later of two sessions of one id wins
        self.closed = False
        self.clean_disconnect = False
        self.inflight_count = 0
        self.receive_max = 65535        # what the client accepts from us (v5 Receive Maximum)
        self.client_max_packet = 0      # v5 Maximum Packet Size of the client, 0 = none
        self.in_quota = 0               # v5: unacked QoS 1/2 publishes we accept; 0 = unchecked (v3)
        self.aliases_in: InboundAliases | None = None
        self.aliases_out: OutboundAliases | None = None
        self.throttle: Throttle | None = None
        self.auth: auth.Exchange | None = None
        self.auth_method: str | None = None
        self._qos1_in = 0               # QoS 1 publishes of this batch, acked at its end
        self._acks: list[bytes] = []
        self._rel_new: list[int] = []   # QoS 2 ids this batch put in awaiting_rel
        self._losses = 0                # workers: Links.losses when the running batch began
        self._suppress_will = False
        self.session_ended = False  # taken over, and the session ended with us (taken_over)
        self._reader = None             # read watcher of a parked (plain TCP) connection; None: a greenlet reads
        self._raw = None                # a parked connection's non-blocking socket.socket under the gevent one
        self._writable = None           # write watcher the writer greenlet of a parked connection waits on
        self._timer = None              # CONNECT timeout, then keep alive
        self._reading = False           # a greenlet is handling this connection's input
        self._out: list[bytes] | None = None  # bytes the socket did not take yet, for the writer greenlet
        self._done = False              # cleaned up
        self._window = 0                # send_window, once known
        self.bytes_in = self.bytes_out = 0  # MQTT bytes read and written (node counters take them at close)

    # -- reading --------------------------------------------------------------
    def start(self, deadline: float = math.inf) -> None:
        """Serve the connection from the accepting greenlet, which it leaves once parked (plain TCP).

        `deadline` (time.monotonic()): the CONNECT must be in by then (mqtt_connect_timeout since accept)."""
        self.node.metrics.counters["socket_open"] += 1
        loop = get_hub().loop
        if self.listener.kind == "tcp":
            sock = self.sock
            sock.settimeout(0.0)  # recv and send raise instead of waiting
            self._reader = loop.io(sock.fileno(), _READ)
            if type(sock).recv is _GEVENT_RECV and type(sock).send is _GEVENT_SEND:
                # With timeout 0 gevent's recv/send only call these: skip a Python frame each.
                # (A subclass, like a handed-over socket with bytes read before, keeps its own.)
                self._raw = sock._sock
        else:
            self.sock.settimeout(None)
        if deadline != math.inf:
            self._set_timer(max(deadline - time.monotonic(), 1e-3))
        lifetime = self.listener.opts.get("max_connection_lifetime")
        if lifetime:  # from the connection's start, as VerneMQ's
            self._lifetime = loop.timer(lifetime)
            self._lifetime.start(lambda: gevent.spawn(self.kick, R.MAXIMUM_CONNECT_TIME, "max_connection_lifetime"))
        self._step()

    def _read_woken(self) -> list | None:
        """In the hub, for `Wakeups`: one recv of a parked connection's input, decoded.

        None when there is nothing to handle: woken for nothing, or EOF or a malformed packet
        closed the connection (its cleanup is under way).
        """
        self._reading = True  # close() leaves the cleanup to us
        packets = None
        try:
            raw = self._raw
            data = raw.recv(RECV_SIZE) if raw is not None else self.sock.recv(RECV_SIZE)
            if data:
                self.bytes_in += len(data)
                packets = self.decoder.feed(data)
                timer = self._timer
                if timer is not None and self.connected:  # none: keep alive 0; before CONNECT: a deadline
                    timer.again(self._timed_out, update=False)
            else:
                self.close()  # EOF
        except BlockingIOError:
            pass
        except (Exception, gevent.Timeout) as e:
            self._fail(e)
        self._reading = False
        if self.closed:
            readers.spawn(_CLEANUP, self)
            return None
        return packets

    @staticmethod
    def _publishes_only(packets: list) -> bool:
        """Only publishes (not retained), acks and pings: nothing that changes subscriptions or
        the session, so the hub may handle the batch (`_in_hub`)."""
        for p in packets:
            if p.type not in _IN_HUB or (p.type == _PUBLISH_TYPE and p.retain):
                return False
        return True

    def _in_hub(self) -> bool:
        """Whether nothing handling a batch of publishes can block, so the hub may handle it with
        no greenlet switch: every hook comes from a plugin that never blocks (`Hooks.may_block`), no
        max_message_rate pause, one worker process. Otherwise, and for anything but publishes
        (CONNECT, SUBSCRIBE, DISCONNECT...), a pooled reader greenlet does (`_resume`)."""
        node = self.node
        return not (node.hooks.may_block or not self.connected or self.throttle is not None
                    or (node.cluster is not None and node.cluster.linked))

    def _handle_in_hub(self, packets: list) -> None:
        try:
            self._batch(packets, True)  # in the hub nothing can switch away: it owns the dispatcher
        except (Exception, gevent.Timeout) as e:
            self._fail(e)
        if self.closed:
            readers.spawn(_CLEANUP, self)
        # else: the watcher stays started, one recv per turn of the loop as in _step

    def _hand_over(self, packets: list) -> None:
        self._reader.stop()  # until the reader greenlet parks the connection again
        readers.spawn(_RESUME, self, packets)

    def _step(self) -> None:
        """Read and handle input in a greenlet until the socket has no more; then park or, once
        closed, clean up. A new connection comes here first; TLS and WebSocket ones stay. Each
        recv is a batch (`_batch`).
        """
        reader = self._reader
        if reader is not None:
            reader.stop()
        self._reading = True
        raw = self._raw
        recv = raw.recv if raw is not None else self.sock.recv
        try:
            while not self.closed:
                try:
                    data = recv(RECV_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    self.close()
                    break
                timer = self._timer
                if timer is not None and self.connected:  # none: keep alive 0; before CONNECT: a deadline
                    timer.again(self._timed_out, update=False)
                self.bytes_in += len(data)
                packets = self.decoder.feed(data)
                self._batch(packets, len(packets) == 1)
                if reader is not None:
                    # One recv per turn of the loop: the watcher fires again if there is more, and a
                    # publisher that always has more does not starve the other connections meanwhile.
                    break
        except (Exception, gevent.Timeout) as e:
            self._fail(e)
        finally:
            self._reading = False
        self._park()

    def _resume(self, packets: list) -> None:
        """In a reader greenlet: a batch `Wakeups` read but the hub could not handle."""
        self._reading = True
        try:
            self._batch(packets, len(packets) == 1)
        except (Exception, gevent.Timeout) as e:
            self._fail(e)
        finally:
            self._reading = False
        self._park()

    def _park(self) -> None:
        if self._reader is None or self.closed:
            self._cleanup()
        else:
            self._reader.start(_WOKEN, self)

    def _batch(self, packets: list, owns: bool) -> None:
        """Handle the packets of one recv, then end the batch.

        `owns`: the batch cannot switch away before its own _end_batch (one packet, or in the hub),
        so it owns the dispatcher and the queues it marks schedule no loop callback. Otherwise a
        hook may block between packets and the callback flushes what was marked meanwhile."""
        node = self.node
        dispatcher = node.dispatcher
        owner = None
        if owns:
            dispatcher.owner = owner = getcurrent()
        if node.cluster is not None:
            self._losses = node.cluster.links.losses  # the acks need no loss between workers from here on
        try:
            publishes = 0
            for p in packets:
                if self.closed:
                    break
                if p.type == _PUBLISH_TYPE and self.connected:
                    publishes += 1
                    self._on_publish(p)
                    if self.throttle is not None:
                        self._throttle()
                else:
                    (_HANDLERS if self.connected else _PRE_CONNECT)[p.type](self, p)
            if publishes:
                self.counters["mqtt_publish_received"] += publishes
            self._end_batch()
        finally:
            if owner is not None:
                if dispatcher.owner is owner:
                    dispatcher.owner = None
                if dispatcher.dirty:  # marked after the flush (or the batch failed): next loop turn
                    dispatcher.schedule()

    def _fail(self, e: BaseException) -> None:
        """An error while handling input ends the connection, answered as the spec says."""
        if isinstance(e, Disconnect):
            self._end_batch()  # the packets handled before the violation keep their acks
            self._send_disconnect(e.reason_code, str(e))
            log.info("client %r from %s:%s disconnected: %s", self.client_id, *self.peer, e)
        elif isinstance(e, MQTTError):
            self._reject(e)
        elif isinstance(e, OSError | gevent.Timeout):
            if not self.closed:
                log.debug("client %r socket error: %s", self.client_id, e)
        else:  # a bug must not reach the hub: this connection ends, the node goes on
            log.error("client %r from %s:%s: internal error", self.client_id, *self.peer, exc_info=e)
        self.close()

    def _throttle(self) -> None:
        """Over max_message_rate: stop reading until the rate window ends (TCP pushes back)."""
        pause = self.throttle.take()
        if pause:
            self.node.metrics.counters["mqtt_publish_throttled"] += 1
            self._end_batch()
            gevent.sleep(pause)

    def _end_batch(self) -> None:
        """Message store flushed, the routed messages written, then the acks in one write. With
        workers, the acks also wait until the workers we forwarded QoS 1/2 publishes to stored them."""
        self._qos1_in = 0
        rel_new, self._rel_new = self._rel_new, []
        node = self.node
        if node.msg_store.pending():
            node.msg_store.flush()
        node.dispatcher.flush()
        links = node.cluster.links if node.cluster is not None else None
        backed_up = links is not None and links.flush()  # what this batch forwarded to other workers
        if self._acks:
            if links is not None and not links.confirm(self._losses):
                self._unconfirmed(rel_new)
                return
            data = b"".join(self._acks)
            self._acks.clear()
            self.send(data)
        if backed_up:
            links.drained.wait()  # a worker is behind on what we forward: read no more until it catches up

    def _unconfirmed(self, rel_new: list[int]) -> None:
        """The workers could not confirm what this batch forwarded (one went down or did not answer,
        a backlog overflowed): no acks, so the client sends the publishes again once it reconnects
        (a QoS 2 one is routed again)."""
        self._acks.clear()
        self.queue.awaiting_rel.difference_update(rel_new)
        self.node.metrics.counters["client_unconfirmed_publish_disconnect"] += 1
        log.warning("client %r from %s:%s disconnected: a worker did not confirm its publishes",
                    self.client_id, *self.peer)
        self.close()

    # -- timers -------------------------------------------------------------
    def _set_timer(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        if seconds:
            self._timer = get_hub().loop.timer(seconds, seconds)
            self._timer.again(self._timed_out, update=False)

    def keep_alive(self) -> None:
        """CONNECT accepted: from now on the keep alive (1.5 times it) bounds the silence."""
        self._set_timer(self.keepalive * 1.5)

    def _timed_out(self) -> None:
        """Timer callback (in the hub)."""
        self._timer.stop()
        gevent.spawn(self._expire)

    def _expire(self) -> None:
        if self.closed:
            return
        if self.connected:
            self.counters["client_keepalive_expired"] += 1
            self._send_disconnect(R.KEEP_ALIVE_TIMEOUT, "keep alive timeout")
            level = logging.WARNING if self.node.config["logging.keepalive_as_warning"] else logging.INFO
            log.log(level, "client %r with username %r from %s:%s stopped due to keepalive expired",
                    self.client_id, self.username, *self.peer)
        else:  # a debug line only: thousands of these are what an attack looks like
            self.node.metrics.counters["socket_close_timeout"] += 1
            log.debug("connection from %s:%s closed: no CONNECT within mqtt_connect_timeout", *self.peer)
        self.close()

    # -- writing ------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write without blocking: what the socket does not take now, a writer greenlet sends."""
        if self.closed:
            return
        self.bytes_out += len(data)
        out = self._out
        if out is not None:
            out.append(data)
            return
        if self._reader is not None:
            raw = self._raw
            try:
                sent = raw.send(data) if raw is not None else self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._out = [data]
        gevent.spawn(self._drain)

    @property
    def writing(self) -> bool:
        """A backlog waits for the socket: the queue holds further deliveries back."""
        return self._out is not None

    def _drain(self) -> None:
        """The writer greenlet: sends the backlog, then lets the queue deliver again."""
        out = self._out
        try:
            while out and not self.closed:
                data = b"".join(out)
                out.clear()
                if self._reader is None:
                    self.sock.sendall(data)
                else:
                    self._send_parked(data)
        except OSError:
            self.close()
        self._out = None
        if self.queue is not None and not self.closed:
            self.queue.wake()

    def _send_parked(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                if self._writable is None:
                    self._writable = get_hub().loop.io(self.sock.fileno(), _WRITE)
                get_hub().wait(self._writable)

    def send_frames(self, frames: list[bytes]) -> None:
        self.send(frames[0] if len(frames) == 1 else b"".join(frames))

    def send_packet(self, packet) -> None:
        self.send(encode(packet, self.proto_level or 4))

    def send_window(self) -> int:
        """In-flight QoS 1/2 deliveries allowed; max_inflight_messages as it was at CONNECT (as VerneMQ)."""
        window = self._window
        if not window:
            limit = self.node.config["max_inflight_messages"]
            window = self._window = min(limit, self.receive_max) if limit else self.receive_max
        return window

    def encode_publish(self, out: Out, dup: bool) -> bytes | None:
        """The PUBLISH frame for one delivery; None if the client cannot take its size."""
        msg = out.msg
        v5 = self.proto_level == 5
        if ("on_deliver_m5" if v5 else "on_deliver") in self.node.hooks.names:
            msg = self.node.on_deliver(self, out)
        elif not v5 and out.qos and msg.frames is None:
            # v3, QoS 1/2 to a single subscriber: encoded with its packet id, no copy to patch.
            return publish_v3(msg.topic.encode(), msg.payload, out.qos, out.retain, dup, out.pid)
        alias = 0
        known = False
        if v5 and (out.sub_ids or msg.expiry is not None or self.aliases_out is not None):
            # Per-delivery properties: encoded for this client alone.
            props = dict(msg.properties or {})
            if out.sub_ids:
                props["subscription_identifier"] = list(out.sub_ids)
            if msg.expiry is not None:
                props["message_expiry_interval"] = max(0, int(msg.expiry - time.time()))
            if self.aliases_out is not None:
                alias, known = self.aliases_out.lookup(msg.topic)
                if alias:
                    props["topic_alias"] = alias
            topic = b"" if known else msg.topic.encode()
            frame, off = publish_frame(topic, msg.payload, out.qos, out.retain, props, 5)
        else:
            frame, off = self._shared_frame(msg, out, v5)
        if self.client_max_packet and len(frame) > self.client_max_packet:
            return None
        if alias and not known:
            self.aliases_out.commit(msg.topic, alias)
        if off < 0:
            return frame
        buf = bytearray(frame)
        buf[off] = out.pid >> 8
        buf[off + 1] = out.pid & 0xFF
        if dup:
            buf[0] |= 0x08
        return bytes(buf)

    @staticmethod
    def _shared_frame(msg: Msg, out: Out, v5: bool) -> tuple[bytes, int]:
        """The frame every subscriber of this shape gets: encoded once per message that fans out."""
        if msg.received is not None and not (v5 or out.qos or out.retain):
            return msg.received, -1  # byte for byte as it came in: nothing to encode
        frames = msg.frames
        key = (v5, out.qos, out.retain)
        tpl = frames.get(key) if frames is not None else None
        if tpl is None:
            tpl = publish_frame(msg.topic.encode(), msg.payload, out.qos, out.retain,
                                msg.properties if v5 else None, 5 if v5 else 4)
            if frames is not None:
                frames[key] = tpl
        return tpl

    def encode_pubrel(self, pid: int) -> bytes:
        return encode(P.Pubrel(pid), self.proto_level)

    def _send_disconnect(self, reason_code: int, why: str = "") -> None:
        if self.proto_level != 5 or self.closed:
            return
        props = {"reason_string": why} if why else None
        if not self.connected:  # mid AUTH exchange: the answer to CONNECT is still due
            return self.send_connack(P.Connack(False, reason_code, props), 5)
        self.counters["mqtt_disconnect_sent"] += 1
        self.node.metrics.count_code("mqtt_disconnect_sent", 5, reason_code)
        frame = encode(P.Disconnect(reason_code, props), 5)
        if self.client_max_packet and len(frame) > self.client_max_packet:
            frame = encode(P.Disconnect(reason_code), 5)  # the spec drops the reason string first
        self.send(frame)

    # -- closing ------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for watcher in (self._reader, self._timer):
            if watcher is not None:
                watcher.stop()
        if self._writable is not None:  # wake a writer waiting for room: it stops
            get_hub().cancel_wait(self._writable, ConnectionAbortedError("connection closed"))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._reader is not None and not self._reading:
            gevent.spawn(self._cleanup)  # parked: no greenlet of this connection runs to do it

    def taken_over(self, session_ends: bool) -> None:
        """Another connection registered our client id: leave (called from its greenlet).
        `session_ends`: it came with Clean Start, or our session had no expiry."""
        self.session_ended = session_ends
        self._suppress_will = self.node.config["suppress_lwt_on_session_takeover"]
        self._send_disconnect(R.SESSION_TAKEN_OVER, "another connection took over the session")
        self.close()

    def kick(self, reason_code: int = R.ADMINISTRATIVE_ACTION, why: str = "") -> None:
        """Disconnect from outside (admin, shutdown)."""
        self._send_disconnect(reason_code, why)
        self.close()

    def _cleanup(self) -> None:
        if self._done:
            return
        self._done = True
        if self._lifetime is not None:
            self._lifetime.close()
        self.close()
        node = self.node
        counters = node.metrics.counters
        counters["socket_close"] += 1
        node.listeners.connection_closed(self)
        counters["bytes_received"] += self.bytes_in  # from here on not in node.sessions' live sum
        counters["bytes_sent"] += self.bytes_out
        if not self.connected:
            return
        node.sessions.discard(self)
        if self.will is not None and not self.clean_disconnect and not self._suppress_will:
            node.wills.publish(self, self.will)
        if self.queue is not None:
            node.registry.unregister(self, self.queue, self.expiry)
        if node.msg_store.pending():
            node.msg_store.flush()

    def _reject(self, err: MQTTError) -> None:
        """Answer a protocol violation per spec, log one line, close."""
        counters = self.counters
        if err.reason_code == R.PACKET_TOO_LARGE:
            counters["mqtt_invalid_msg_size_error"] += 1
        elif err.reason_code == R.MALFORMED_PACKET:
            counters["mqtt_malformed_packet_error"] += 1
        else:
            counters["mqtt_protocol_error"] += 1
        log.warning("client %r from %s:%s: %s (reason 0x%02x)", self.client_id or "?", *self.peer,
                    err, err.reason_code)
        level = self.decoder.version or self.proto_level
        if not self.connected:
            if level == 5:
                self.send_connack(P.Connack(False, err.reason_code), level)
            elif isinstance(err, UnsupportedProtocolVersion):
                self.send_connack(P.Connack(False, R.UNACCEPTABLE_PROTOCOL), 4)
        else:
            self._send_disconnect(err.reason_code, str(err))

    # -- CONNECT (connect.py) and AUTH (auth.py) --------------------------------
    def send_connack(self, connack: P.Connack, level: int) -> None:
        self.counters["mqtt_connack_sent"] += 1
        self.node.metrics.count_code("mqtt_connack_sent", level, connack.reason_code)
        self.send(encode(connack, level))

    def refuse(self, level: int, v5_code: int, why: str) -> None:
        """Answer CONNECT with a failure CONNACK and close."""
        log.info("refused client %r from %s:%s: %s", self.client_id, *self.peer, why)
        counter = _REFUSAL_COUNTERS.get(R.connack_v3(v5_code))
        if counter is not None:
            self.counters[counter] += 1
        code = v5_code if level == 5 else R.connack_v3(v5_code)
        self.send_connack(P.Connack(False, code, {"reason_string": why} if level == 5 else None), level)
        self.close()

    def finish_connect(self, p: P.Connect, auth_props: dict | None) -> None:
        connect.finish(self, p, auth_props)

    def _on_connect(self, p: P.Connect) -> None:
        if not (p.properties and "authentication_method" in p.properties):
            self._set_timer(0)  # the CONNECT is in: its deadline is over (as VerneMQ); an AUTH exchange keeps it
        connect.on_connect(self, p)

    def _on_auth(self, p: P.Auth) -> None:
        self.counters["mqtt_auth_received"] += 1
        self.node.metrics.count_code("mqtt_auth_received", 5, p.reason_code)
        auth.on_auth(self, p)

    # -- PUBLISH in ---------------------------------------------------------
    def _on_publish(self, p: P.Publish) -> None:
        qos = p.qos
        pid = p.packet_id
        if qos:
            if qos == 2 and pid in self.queue.awaiting_rel:
                self._acks.append(ack_frame(_PUBREC, pid))  # resend: route once only
                return
            if self.in_quota:
                self._check_receive_max(qos)
            if self.proto_level == 5 and self.node.overload.active:
                # Refuse what the node may not keep, rather than accept and shed it.
                self.node.metrics.counters["overload_publish_refused"] += 1
                self._refuse_publish(qos, pid, R.QUOTA_EXCEEDED)
                return
        props = p.properties
        topic = p.topic
        if props is not None and self.aliases_in is not None:
            topic, props = self.aliases_in.resolve(topic, props)
        msg = Msg(topic, p.payload, qos, p.retain, props, self.mountpoint, None, self.sid, None, p.frame)
        if props and "message_expiry_interval" in props:
            msg.expiry = time.time() + props["message_expiry_interval"]
        node = self.node
        if node.cluster is not None and node.cluster.split and node.netsplit_refuses("publish"):
            if qos and self.proto_level == 5:
                self._refuse_publish(qos, pid, R.UNSPECIFIED_ERROR)
            return  # v3 cannot refuse: no ack, so the client sends it again
        allowed = node.authorize_publish(self, msg)
        if allowed:
            if node.publish(msg) < 0:
                raise MalformedPacket(f"topic deeper than topic_max_depth {node.config['topic_max_depth']}")
        elif self.proto_level != 5 and node.config["disconnect_on_unauthorized_publish_v3"]:
            raise Disconnect(R.NOT_AUTHORIZED, f"not authorized to publish to {topic!r}")
        if not qos:
            return
        if allowed or self.proto_level != 5:
            if qos == 2 and allowed:
                self.queue.awaiting_rel.add(pid)
                self._rel_new.append(pid)
            self._acks.append(bytes((_PUBACK if qos == 1 else _PUBREC, 2, pid >> 8, pid & 0xFF)))  # ack_frame
        else:
            self._refuse_publish(qos, pid, R.NOT_AUTHORIZED)

    def _refuse_publish(self, qos: int, pid: int, reason_code: int) -> None:
        """v5: answer a QoS 1/2 publish that was not routed with its reason code."""
        ack = P.Puback if qos == 1 else P.Pubrec
        self._acks.append(encode(ack(pid, reason_code), 5))

    def _check_receive_max(self, qos: int) -> None:
        # Unacked inbound: this batch's QoS 1 (acked at its end) and QoS 2 awaiting PUBREL.
        if qos == 1:
            self._qos1_in += 1
        if self._qos1_in + len(self.queue.awaiting_rel) + (qos == 2) > self.in_quota:
            raise Disconnect(R.RECEIVE_MAXIMUM_EXCEEDED,
                             f"more than {self.in_quota} unacknowledged QoS 1/2 publishes")

    def _on_pubrel(self, p: P.Pubrel) -> None:
        self.counters["mqtt_pubrel_received"] += 1
        self.queue.awaiting_rel.discard(p.packet_id)
        self._acks.append(ack_frame(_PUBCOMP, p.packet_id))

    # -- acks of our deliveries ---------------------------------------------
    def _on_puback(self, p: P.Puback) -> None:
        self.counters["mqtt_puback_received"] += 1
        if not self.queue.acked(self, p.packet_id):
            self.counters["mqtt_puback_invalid_error"] += 1

    def _on_pubrec(self, p: P.Pubrec) -> None:
        self.counters["mqtt_pubrec_received"] += 1
        if p.reason_code >= 0x80:
            self.queue.acked(self, p.packet_id)
        elif self.queue.acked(self, p.packet_id, pubrec=True):
            self._acks.append(self.encode_pubrel(p.packet_id))
        else:
            self.counters["mqtt_pubrec_invalid_error"] += 1
            self._acks.append(encode(P.Pubrel(p.packet_id, R.PACKET_IDENTIFIER_NOT_FOUND
                                              if self.proto_level == 5 else 0), self.proto_level))

    def _on_pubcomp(self, p: P.Pubcomp) -> None:
        self.counters["mqtt_pubcomp_received"] += 1
        if not self.queue.acked(self, p.packet_id):
            self.counters["mqtt_pubcomp_invalid_error"] += 1

    # -- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------
    def _on_subscribe(self, p: P.Subscribe) -> None:
        cluster = self.node.cluster
        if cluster is None:
            return self._subscribe(p)
        cluster.subscribing()  # with workers: the others route to us until they know what it adds
        try:
            self._subscribe(p)
        finally:
            cluster.subscribe_done()

    def _subscribe(self, p: P.Subscribe) -> None:
        node = self.node
        self.counters["mqtt_subscribe_received"] += 1
        v5 = self.proto_level == 5
        sub_id = (p.properties or {}).get("subscription_identifier", [None])[0]
        if node.netsplit_refuses("subscribe"):
            self.counters["mqtt_suback_sent"] += 1
            self.send(encode(P.Suback(p.packet_id, [R.UNSPECIFIED_ERROR] * len(p.topics)), self.proto_level))
            return
        self._check_depth(f for f, _ in p.topics)
        granted = node.authorize_subscribe(self, [(f, o.qos) for f, o in p.topics], p.properties)
        limit = node.config["max_subscriptions_per_client"]
        codes: list[int] = []
        retained: list[tuple[str, Subscription]] = []
        for (_, opts), (filt, qos) in zip(p.topics, granted, strict=True):
            valid, shared = self._check_filter(filt)
            if not valid:
                codes.append(R.TOPIC_FILTER_INVALID if v5 else 0x80)
                continue
            if shared and opts.no_local:
                raise Disconnect(R.PROTOCOL_ERROR, f"No Local set on shared subscription {filt!r}")
            if qos >= 0x80:
                codes.append(qos if v5 else 0x80)
                continue
            if limit and self._at_subscription_limit(filt, limit):
                codes.append(R.QUOTA_EXCEEDED if v5 else 0x80)
                continue
            sub = Subscription(qos, opts.no_local or self.bridge, opts.retain_as_published or self.bridge,
                               opts.retain_handling, sub_id)
            new = node.registry.subscribe(self.sid, filt, sub, persist=False)
            codes.append(qos)
            if not shared and (sub.retain_handling == 0 or (sub.retain_handling == 1 and new)):
                retained.append((filt, sub))
        if any(code < 0x80 for code in codes):
            node.registry.persist_subscriptions(self.sid)  # once per packet: the table is written whole
        self.counters["mqtt_suback_sent"] += 1
        self.send(encode(P.Suback(p.packet_id, codes), self.proto_level))
        for filt, sub in retained:
            node.deliver_retained(self.queue, filt, sub)
        node.hooks_event("on_subscribe_m5" if v5 else "on_subscribe", self.username, self.sid,
                         [(f, q) for (f, _), q in zip(granted, codes, strict=True)],
                         *((p.properties,) if v5 else ()))

    def _check_depth(self, filters) -> None:
        """A filter deeper than topic_max_depth makes the packet malformed (VerneMQ's parser refuses it)."""
        node = self.node
        for filt in filters:
            if node.too_deep(filt):
                raise MalformedPacket(f"filter deeper than topic_max_depth {node.config['topic_max_depth']}")

    def _at_subscription_limit(self, filt: str, limit: int) -> bool:
        """A new filter while the client holds max_subscriptions_per_client (replacing one is allowed)."""
        table = self.node.registry.subscriptions.get(self.sid)
        if table is None or filt in table or len(table) < limit:
            return False
        self.node.metrics.counters["mqtt_subscribe_quota_exceeded"] += 1
        return True

    @staticmethod
    def _check_filter(filt: str) -> tuple[bool, bool]:
        """(valid, shared) of a subscription filter."""
        try:
            shared = parse_shared(filt)
        except ValueError:
            return False, False
        return valid_filter(shared[1] if shared else filt), shared is not None

    def _on_unsubscribe(self, p: P.Unsubscribe) -> None:
        node = self.node
        self.counters["mqtt_unsubscribe_received"] += 1
        if node.netsplit_refuses("unsubscribe"):
            if self.proto_level == 5:
                self._acks.append(encode(P.Unsuback(p.packet_id, [R.UNSPECIFIED_ERROR] * len(p.topics)), 5))
            return  # v3 has no failure code: no UNSUBACK, the subscription stays
        self._check_depth(p.topics)
        topics = node.authorize_unsubscribe(self, list(p.topics), p.properties)
        codes = [0 if node.registry.unsubscribe(self.sid, f, persist=False) else R.NO_SUBSCRIPTION_EXISTED
                 for f in topics]
        if 0 in codes:
            node.registry.persist_subscriptions(self.sid)
        self.counters["mqtt_unsuback_sent"] += 1
        self._acks.append(encode(P.Unsuback(p.packet_id, codes if self.proto_level == 5 else []),
                                 self.proto_level))

    # -- the rest -----------------------------------------------------------
    def _on_pingreq(self, p: P.Pingreq) -> None:
        counters = self.counters
        counters["mqtt_pingreq_received"] += 1
        counters["mqtt_pingresp_sent"] += 1
        self._acks.append(_PINGRESP)

    def _on_disconnect(self, p: P.Disconnect) -> None:
        self.counters["mqtt_disconnect_received"] += 1
        self.node.metrics.count_code("mqtt_disconnect_received", self.proto_level, p.reason_code)
        if self.proto_level == 5:
            new_expiry = (p.properties or {}).get("session_expiry_interval")
            if new_expiry is not None:
                if self.expiry == 0 and new_expiry != 0:
                    raise Disconnect(R.PROTOCOL_ERROR, "session expiry set in DISCONNECT after 0 in CONNECT")
                self.expiry = connect.v5_expiry(new_expiry)
        # v5 reason 0x04 "disconnect with will message" keeps the will.
        self.clean_disconnect = p.reason_code != R.DISCONNECT_WITH_WILL_MESSAGE
        self.close()

    def _on_unexpected(self, p) -> None:
        raise Disconnect(R.PROTOCOL_ERROR, f"unexpected {type(p).__name__}")

    def _on_early_disconnect(self, p: P.Disconnect) -> None:
        """DISCONNECT before CONNACK (during an AUTH exchange): just close."""
        self.clean_disconnect = True
        self.close()


_PINGRESP = encode(P.Pingresp(), 4)
_PUBLISH_TYPE = P.PUBLISH
_WOKEN = wakeups.add  # a parked connection's read watcher callback: _WOKEN(session)
_STEP = Session._step  # the reader greenlets' jobs: readers.spawn(_STEP, session), ...
_RESUME = Session._resume
_CLEANUP = Session._cleanup
# What a parked connection's batch may hold to be handled in the hub (PUBLISH: not retained).
# VerneMQ's counters of refused CONNECTs, by the MQTT 3 return code
_REFUSAL_COUNTERS = {1: "mqtt_connack_unacceptable_protocol_sent", 2: "mqtt_connack_identifier_rejected_sent",
                     3: "mqtt_connack_server_unavailable_sent", 4: "mqtt_connack_bad_credentials_sent",
                     5: "mqtt_connack_not_authorized_sent"}
_IN_HUB = frozenset((P.PUBLISH, P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP, P.PINGREQ))
_GEVENT_RECV = gsocket.socket.recv
_GEVENT_SEND = gsocket.socket.send

_HANDLERS = {
    P.CONNECT: Session._on_unexpected,
    P.PUBLISH: Session._on_publish,
    P.PUBACK: Session._on_puback,
    P.PUBREC: Session._on_pubrec,
    P.PUBREL: Session._on_pubrel,
    P.PUBCOMP: Session._on_pubcomp,
    P.SUBSCRIBE: Session._on_subscribe,
    P.UNSUBSCRIBE: Session._on_unsubscribe,
    P.PINGREQ: Session._on_pingreq,
    P.DISCONNECT: Session._on_disconnect,
    P.AUTH: Session._on_auth,
    P.CONNACK: Session._on_unexpected,
    P.SUBACK: Session._on_unexpected,
    P.UNSUBACK: Session._on_unexpected,
    P.PINGRESP: Session._on_unexpected,
}

# Before CONNACK only CONNECT, AUTH (enhanced authentication) and DISCONNECT are allowed.
_PRE_CONNECT = dict.fromkeys(_HANDLERS, Session._on_unexpected)
_PRE_CONNECT.update({P.CONNECT: Session._on_connect, P.AUTH: Session._on_auth,
                     P.DISCONNECT: Session._on_early_disconnect})
