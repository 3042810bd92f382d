"""The connection greenlet: one MQTT connection from CONNECT to close.

It reads up to 64 KiB per recv, decodes every complete frame, handles them in
order and sends the acks of the whole batch with one write (after flushing the
message store, so an acked QoS 1/2 message is on disk first). Deliveries to
this client are written by its queue's greenlet through `send_frames`.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import TYPE_CHECKING

import gevent
from gevent.lock import Semaphore

from vmqpy.broker.message import Msg
from vmqpy.broker.queue import QueueOpts
from vmqpy.broker.router import Subscription
from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import Decoder, MQTTError, UnsupportedProtocolVersion, encode, publish_frame
from vmqpy.mqtt.topic import parse_shared, valid_filter

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.broker.queue import Out, Queue

log = logging.getLogger(__name__)

RECV_SIZE = 65536
CONNECT_TIMEOUT = 30.0
NEVER_EXPIRES = 0xFFFFFFFF


class Disconnect(Exception):
    """Close the connection; v5 clients get a DISCONNECT with `reason_code` first."""

    def __init__(self, reason_code: int, why: str) -> None:
        super().__init__(why)
        self.reason_code = reason_code


class Session:
    def __init__(self, node: Node, sock: socket.socket, peer: tuple, listener) -> None:
        self.node = node
        self.sock = sock
        self.peer = (peer[0], peer[1]) if peer else ("", 0)
        self.listener = listener
        self.mountpoint: str = listener.opts.get("mountpoint", "") or ""
        self.decoder = Decoder(max_packet_size=node.config["max_message_size"])
        self.proto_level = 0
        self.client_id = ""
        self.sid: tuple[str, str] = (self.mountpoint, "")
        self.username: str | None = None
        self.queue: Queue | None = None
        self.will: P.Will | None = None
        self.expiry: float | None = 0  # session expiry seconds; None = never
        self.keepalive = 0
        self.connected = False
        self.closed = False
        self.clean_disconnect = False
        self.inflight_count = 0
        self.receive_max = 65535        # what the client accepts from us (v5 Receive Maximum)
        self.client_max_packet = 0      # v5 Maximum Packet Size of the client, 0 = none
        self.alias_in: dict[int, str] = {}
        self._acks: list[bytes] = []
        self._wlock = Semaphore()
        self._suppress_will = False

    # -- the greenlet -------------------------------------------------------
    def run(self) -> None:
        metrics = self.node.metrics
        metrics.counters["socket_open"] += 1
        try:
            self._serve()
        except Disconnect as e:
            self._send_disconnect(e.reason_code)
            log.info("client %r from %s:%s disconnected: %s", self.client_id, *self.peer, e)
        except MQTTError as e:
            self._reject(e)
        except (OSError, gevent.Timeout) as e:
            if not self.closed:
                log.debug("client %r socket error: %s", self.client_id, e)
        finally:
            self._cleanup()

    def _serve(self) -> None:
        sock = self.sock
        sock.settimeout(CONNECT_TIMEOUT)
        decoder = self.decoder
        while not self.closed:
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                if not self.connected:
                    return
                self.node.metrics.counters["client_keepalive_expired"] += 1
                raise Disconnect(R.KEEP_ALIVE_TIMEOUT, "keepalive expired") from None
            if not data:
                return
            packets = decoder.feed(data)
            publishes = 0
            for p in packets:
                if self.closed:
                    break
                if p.type == P.PUBLISH:
                    publishes += 1
                    self._on_publish(p)
                else:
                    _HANDLERS[p.type](self, p)
            if publishes:
                self.node.metrics.counters["mqtt_publish_received"] += publishes
            self._flush_acks()

    def _flush_acks(self) -> None:
        store = self.node.msg_store
        if store.pending():
            store.flush()
        if self._acks:
            data = b"".join(self._acks)
            self._acks.clear()
            self.send(data)

    # -- writing ------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            with self._wlock:
                self.sock.sendall(data)
        except OSError:
            self.close()

    def send_frames(self, frames: list[bytes]) -> None:
        self.send(frames[0] if len(frames) == 1 else b"".join(frames))

    def _send_packet(self, packet) -> None:
        self.send(encode(packet, self.proto_level or 4))

    def send_window(self) -> int:
        limit = self.node.config["max_inflight_messages"]
        return min(limit, self.receive_max) if limit else self.receive_max

    def encode_publish(self, out: Out, dup: bool) -> bytes | None:
        """The PUBLISH frame for one delivery; None if the client cannot take its size."""
        msg = out.msg
        v5 = self.proto_level == 5
        props = msg.properties
        cacheable = True
        if v5 and (out.sub_ids or msg.expiry is not None):
            props = dict(props or {})
            if out.sub_ids:
                props["subscription_identifier"] = list(out.sub_ids)
            if msg.expiry is not None:
                props["message_expiry_interval"] = max(0, int(msg.expiry - time.time()))
            cacheable = False
        key = (v5, out.qos, out.retain)
        frames = msg.frames
        tpl = frames.get(key) if frames is not None and cacheable else None
        if tpl is None:
            tpl = publish_frame(msg.topic.encode(), msg.payload, out.qos, out.retain,
                                props if v5 else None, 5 if v5 else 4)
            if cacheable:
                if frames is None:
                    frames = msg.frames = {}
                frames[key] = tpl
        frame, off = tpl
        if self.client_max_packet and len(frame) > self.client_max_packet:
            self.node.metrics.counters["queue_message_drop"] += 1
            return None
        if off < 0:
            return frame
        buf = bytearray(frame)
        buf[off] = out.pid >> 8
        buf[off + 1] = out.pid & 0xFF
        if dup:
            buf[0] |= 0x08
        return bytes(buf)

    def encode_pubrel(self, pid: int) -> bytes:
        return encode(P.Pubrel(pid), self.proto_level)

    def _send_disconnect(self, reason_code: int) -> None:
        if self.proto_level == 5 and self.connected:
            self.node.metrics.counters["mqtt_disconnect_sent"] += 1
            self._send_packet(P.Disconnect(reason_code))

    # -- closing ------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def taken_over(self) -> None:
        """Another connection registered our client id: leave (called from its greenlet)."""
        self._suppress_will = self.node.config["suppress_lwt_on_session_takeover"]
        self._send_disconnect(R.SESSION_TAKEN_OVER)
        self.close()

    def kick(self, reason_code: int = R.ADMINISTRATIVE_ACTION) -> None:
        """Disconnect from outside (admin, shutdown)."""
        self._send_disconnect(reason_code)
        self.close()

    def _cleanup(self) -> None:
        self.close()
        node = self.node
        node.metrics.counters["socket_close"] += 1
        node.listeners.connection_closed(self)
        if not self.connected:
            return
        node.sessions.discard(self)
        if self.will is not None and not self.clean_disconnect and not self._suppress_will:
            node.publish_will(self, self.will)
        if self.queue is not None:
            node.registry.unregister(self, self.queue, self.expiry)
        if node.msg_store.pending():
            node.msg_store.flush()

    def _reject(self, err: MQTTError) -> None:
        """Answer a protocol violation per spec, log one line, close."""
        counters = self.node.metrics.counters
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
                self._connack(P.Connack(False, err.reason_code), level)
            elif isinstance(err, UnsupportedProtocolVersion):
                self._connack(P.Connack(False, R.UNACCEPTABLE_PROTOCOL), 4)
        else:
            self._send_disconnect(err.reason_code)

    # -- CONNECT ------------------------------------------------------------
    def _connack(self, connack: P.Connack, level: int) -> None:
        counters = self.node.metrics.counters
        counters["mqtt_connack_sent"] += 1
        self.send(encode(connack, level))

    def _refuse(self, level: int, v5_code: int, why: str) -> None:
        log.info("refused client %r from %s:%s: %s", self.client_id, *self.peer, why)
        code = v5_code if level == 5 else R.connack_v3(v5_code)
        self._connack(P.Connack(False, code), level)
        self.close()

    def _on_connect(self, p: P.Connect) -> None:
        node = self.node
        cfg = node.config
        node.metrics.counters["mqtt_connect_received"] += 1
        level = p.proto_level
        self.proto_level = level
        if level not in self.listener.opts.get("allowed_protocol_versions", (3, 4, 5)):
            return self._refuse(level, R.UNSUPPORTED_PROTOCOL_VERSION, f"protocol level {level} not allowed")
        props = p.properties or {}
        client_id = p.client_id
        assigned = False
        if not client_id:
            if level == 3 or (level == 4 and not p.clean_start):
                return self._refuse(level, R.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
            client_id = "vmq-" + uuid.uuid4().hex
            assigned = True
        if len(client_id) > cfg["max_client_id_size"] and not assigned:
            return self._refuse(level, R.CLIENT_IDENTIFIER_NOT_VALID, "client id too long")
        self.client_id = client_id
        self.sid = (self.mountpoint, client_id)
        self.username = p.username
        if not cfg["allow_anonymous"] and not self._auth_register(p, props):
            return None
        self.keepalive = p.keepalive
        self.will = p.will
        if level == 5:
            self.expiry = self._v5_expiry(props.get("session_expiry_interval", 0))
            self.receive_max = props.get("receive_maximum", 65535)
            self.client_max_packet = props.get("maximum_packet_size", 0)
        else:
            # persistent_client_expiration = never is 0 in the config, None (never) here.
            self.expiry = 0 if p.clean_start else (cfg["persistent_client_expiration"] or None)
        opts = QueueOpts(cfg["max_online_messages"], cfg["max_offline_messages"], cfg["queue_type"],
                         self.expiry != 0, cfg["queue_deliver_mode"])
        registry = node.registry
        queue, present = registry.register(self, self.sid, p.clean_start, self.expiry, opts)
        self.queue = queue
        self.connected = True
        node.sessions.add(self)
        connack = P.Connack(present, 0, self._connack_props(assigned) if level == 5 else None)
        self._connack(connack, level)
        node.metrics.counters["mqtt_connack_accepted_sent"] += 1
        queue.start_delivery(self)
        self.sock.settimeout(self.keepalive * 1.5 if self.keepalive else None)
        node.hooks_event("on_register_m5" if level == 5 else "on_register", self.peer, self.sid,
                         self.username, *((props,) if level == 5 else ()))
        return None

    def _v5_expiry(self, interval: int) -> float | None:
        return None if interval == NEVER_EXPIRES else interval

    def _connack_props(self, assigned: bool) -> dict:
        cfg = self.node.config
        props: dict = {}
        if assigned:
            props["assigned_client_identifier"] = self.client_id
        if cfg["max_message_size"]:
            props["maximum_packet_size"] = cfg["max_message_size"]
        if cfg["topic_alias_max_client"]:
            props["topic_alias_maximum"] = cfg["topic_alias_max_client"]
        return props

    def _auth_register(self, p: P.Connect, props: dict) -> bool:
        hooks = self.node.hooks
        if p.proto_level == 5:
            res, val = hooks.all_till_ok("auth_on_register_m5", self.peer, self.sid, p.username,
                                         p.password, p.clean_start, props)
        else:
            res, val = hooks.all_till_ok("auth_on_register", self.peer, self.sid, p.username,
                                         p.password, p.clean_start)
        if res == "ok":
            self._apply_register_modifiers(val)
            return True
        if res == "error" and val in ("invalid_credentials", "bad_username_or_password"):
            self._refuse(p.proto_level, R.BAD_USERNAME_OR_PASSWORD, "invalid credentials")
        else:
            self._refuse(p.proto_level, R.NOT_AUTHORIZED, f"not authorized ({val or 'no hook answered'})")
        return False

    def _apply_register_modifiers(self, mods: dict) -> None:
        if "mountpoint" in mods:
            self.mountpoint = mods["mountpoint"]
        if "client_id" in mods:
            self.client_id = mods["client_id"]
        if "username" in mods:
            self.username = mods["username"]
        self.sid = (self.mountpoint, self.client_id)

    # -- PUBLISH in ---------------------------------------------------------
    def _on_publish(self, p: P.Publish) -> None:
        qos = p.qos
        pid = p.packet_id
        if qos == 2 and pid in self.queue.awaiting_rel:
            self._acks.append(encode(P.Pubrec(pid), self.proto_level))  # resend: route once only
            return
        props = p.properties
        topic = p.topic
        if props is not None and self.proto_level == 5:
            topic, props = self._resolve_alias(topic, props)
        msg = Msg(topic, p.payload, qos, p.retain, props, self.mountpoint, sender=self.sid)
        if props and "message_expiry_interval" in props:
            msg.expiry = time.time() + props["message_expiry_interval"]
        allowed = self.node.authorize_publish(self, msg)
        if allowed:
            self.node.publish(msg)
        if qos == 1:
            code = 0 if allowed else R.NOT_AUTHORIZED
            self._acks.append(encode(P.Puback(pid, code if self.proto_level == 5 else 0), self.proto_level))
        elif qos == 2:
            code = 0 if allowed else R.NOT_AUTHORIZED
            if allowed:
                self.queue.awaiting_rel.add(pid)
            self._acks.append(encode(P.Pubrec(pid, code if self.proto_level == 5 else 0), self.proto_level))

    def _resolve_alias(self, topic: str, props: dict) -> tuple[str, dict]:
        alias = props.get("topic_alias")
        if alias is None:
            return topic, props
        limit = self.node.config["topic_alias_max_client"]
        if not 0 < alias <= limit:
            raise Disconnect(R.TOPIC_ALIAS_INVALID, f"topic alias {alias} out of range")
        if topic:
            self.alias_in[alias] = topic
        else:
            topic = self.alias_in.get(alias, "")
            if not topic:
                raise Disconnect(R.PROTOCOL_ERROR, f"unknown topic alias {alias}")
        props = {k: v for k, v in props.items() if k != "topic_alias"}
        return topic, props or None

    def _on_pubrel(self, p: P.Pubrel) -> None:
        self.node.metrics.counters["mqtt_pubrel_received"] += 1
        self.queue.awaiting_rel.discard(p.packet_id)
        self._acks.append(encode(P.Pubcomp(p.packet_id), self.proto_level))

    # -- acks of our deliveries ---------------------------------------------
    def _on_puback(self, p: P.Puback) -> None:
        self.node.metrics.counters["mqtt_puback_received"] += 1
        if not self.queue.acked(self, p.packet_id):
            self.node.metrics.counters["mqtt_puback_invalid_error"] += 1

    def _on_pubrec(self, p: P.Pubrec) -> None:
        self.node.metrics.counters["mqtt_pubrec_received"] += 1
        if p.reason_code >= 0x80:
            self.queue.acked(self, p.packet_id)
        elif self.queue.acked(self, p.packet_id, pubrec=True):
            self._acks.append(self.encode_pubrel(p.packet_id))
        else:
            self._acks.append(encode(P.Pubrel(p.packet_id, R.PACKET_IDENTIFIER_NOT_FOUND
                                              if self.proto_level == 5 else 0), self.proto_level))

    def _on_pubcomp(self, p: P.Pubcomp) -> None:
        self.node.metrics.counters["mqtt_pubcomp_received"] += 1
        self.queue.acked(self, p.packet_id)

    # -- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------
    def _on_subscribe(self, p: P.Subscribe) -> None:
        node = self.node
        node.metrics.counters["mqtt_subscribe_received"] += 1
        v5 = self.proto_level == 5
        sub_id = (p.properties or {}).get("subscription_identifier", [None])[0]
        granted = node.authorize_subscribe(self, [(f, o.qos) for f, o in p.topics], p.properties)
        codes: list[int] = []
        retained: list[tuple[str, Subscription]] = []
        for (filt, opts), qos in zip(p.topics, granted, strict=True):
            if not self._valid_subscription(filt):
                codes.append(R.TOPIC_FILTER_INVALID if v5 else 0x80)
                continue
            if qos >= 0x80:
                codes.append(qos if v5 else 0x80)
                continue
            sub = Subscription(qos, opts.no_local, opts.retain_as_published, opts.retain_handling, sub_id)
            new = node.registry.subscribe(self.sid, filt, sub)
            codes.append(qos)
            if parse_shared(filt) is None and (sub.retain_handling == 0 or (sub.retain_handling == 1 and new)):
                retained.append((filt, sub))
        node.metrics.counters["mqtt_suback_sent"] += 1
        self.send(encode(P.Suback(p.packet_id, codes), self.proto_level))
        for filt, sub in retained:
            node.deliver_retained(self.queue, filt, sub)
        node.hooks_event("on_subscribe_m5" if v5 else "on_subscribe", self.username, self.sid,
                         [(f, q) for (f, _), q in zip(p.topics, codes, strict=True)],
                         *((p.properties,) if v5 else ()))

    def _valid_subscription(self, filt: str) -> bool:
        try:
            shared = parse_shared(filt)
        except ValueError:
            return False
        return valid_filter(shared[1] if shared else filt)

    def _on_unsubscribe(self, p: P.Unsubscribe) -> None:
        node = self.node
        node.metrics.counters["mqtt_unsubscribe_received"] += 1
        codes = [0 if node.registry.unsubscribe(self.sid, f) else R.NO_SUBSCRIPTION_EXISTED
                 for f in p.topics]
        node.metrics.counters["mqtt_unsuback_sent"] += 1
        self._acks.append(encode(P.Unsuback(p.packet_id, codes if self.proto_level == 5 else []),
                                 self.proto_level))
        v5 = self.proto_level == 5
        node.hooks_event("on_unsubscribe_m5" if v5 else "on_unsubscribe", self.username, self.sid,
                         list(p.topics), *((p.properties,) if v5 else ()))

    # -- the rest -----------------------------------------------------------
    def _on_pingreq(self, p: P.Pingreq) -> None:
        counters = self.node.metrics.counters
        counters["mqtt_pingreq_received"] += 1
        counters["mqtt_pingresp_sent"] += 1
        self._acks.append(_PINGRESP)

    def _on_disconnect(self, p: P.Disconnect) -> None:
        self.node.metrics.counters["mqtt_disconnect_received"] += 1
        if self.proto_level == 5:
            new_expiry = (p.properties or {}).get("session_expiry_interval")
            if new_expiry is not None:
                if self.expiry == 0 and new_expiry != 0:
                    raise Disconnect(R.PROTOCOL_ERROR, "session expiry set in DISCONNECT after 0 in CONNECT")
                self.expiry = self._v5_expiry(new_expiry)
        # v5 reason 0x04 "disconnect with will message" keeps the will.
        self.clean_disconnect = p.reason_code != R.DISCONNECT_WITH_WILL_MESSAGE
        self.close()

    def _on_auth(self, p: P.Auth) -> None:
        self.node.metrics.counters["mqtt_auth_received"] += 1
        raise Disconnect(R.PROTOCOL_ERROR, "AUTH without an authentication method")

    def _on_unexpected(self, p) -> None:
        if p.type == P.CONNECT and not self.connected:
            return self._on_connect(p)
        raise Disconnect(R.PROTOCOL_ERROR, f"unexpected {type(p).__name__}")


_PINGRESP = encode(P.Pingresp(), 4)

_HANDLERS = {
    P.CONNECT: Session._on_unexpected,
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
