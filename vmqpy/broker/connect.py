"""CONNECT to CONNACK: client id rules, authentication, session setup and the CONNACK properties."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from vmqpy.broker import auth, tls
from vmqpy.broker.aliases import InboundAliases, OutboundAliases
from vmqpy.broker.overload import Throttle
from vmqpy.broker.queue import QueueOpts
from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import MalformedPacket, MQTTError
from vmqpy.mqtt.topic import valid_topic_name

if TYPE_CHECKING:
    from vmqpy.broker.session import Session

log = logging.getLogger(__name__)


class InvalidWillTopic(MQTTError):
    reason_code = R.TOPIC_NAME_INVALID


NEVER_EXPIRES = 0xFFFFFFFF


def v5_expiry(interval: int) -> float | None:
    """A Session Expiry Interval as the registry counts it: seconds, None = never."""
    return None if interval == NEVER_EXPIRES else interval


def on_connect(s: Session, p: P.Connect) -> None:
    node = s.node
    cfg = node.config
    level = p.proto_level
    s.proto_level = level
    s.bridge = p.bridge  # as mosquitto: a bridge's subscriptions are no-local and retain-as-published
    s.counters = node.metrics.for_level(level)
    s.counters["mqtt_connect_received"] += 1
    wire_level = level | 0x80 if p.bridge else level  # VerneMQ's 131/132: a bridge's 3.1/3.1.1
    if wire_level not in s.listener.opts.get("allowed_protocol_versions", (3, 4, 5, 131, 132)):
        return s.refuse(level, R.UNSUPPORTED_PROTOCOL_VERSION, f"protocol level {wire_level} not allowed")
    if node.overload.active:
        node.metrics.counters["overload_connect_refused"] += 1
        return s.refuse(level, R.SERVER_BUSY, "node overloaded")
    props = p.properties or {}
    client_id = p.client_id
    if not client_id:
        if level == 3 or (level == 4 and not p.clean_start):
            return s.refuse(level, R.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
        client_id = "vmq-" + uuid.uuid4().hex
        s.assigned_id = True
    elif len(client_id) > cfg["max_client_id_size"]:
        return s.refuse(level, R.CLIENT_IDENTIFIER_NOT_VALID, "client id too long")
    if p.will is not None:
        _check_will_topic(node, p.will.topic)
    max_keepalive = cfg["max_keepalive"]
    if level != 5 and max_keepalive and not 0 < p.keepalive <= max_keepalive:
        # v3 has no Server Keep Alive to answer with: refused, as mosquitto does.
        return s.refuse(level, R.CLIENT_IDENTIFIER_NOT_VALID,
                        f"keep alive {p.keepalive} s not within 1..{max_keepalive} s (max_keepalive)")
    s.client_id = client_id
    s.sid = (s.mountpoint, client_id)
    if s.listener.opts.get("use_identity_as_username"):  # the client certificate's CN, as VerneMQ's preauth
        p.username = tls.common_name(s.sock) or p.username
    elif s.preauth is not None:  # the CN a proxy sent (PROXY v2 TLV, X-Forwarded CN header)
        p.username = s.preauth
    s.username = p.username
    method = props.get("authentication_method") if level == 5 else None
    if method is not None:
        # Enhanced authentication stands in for auth_on_register_m5.
        try:
            result = auth.start(s, p, method, props)
        except auth.AuthFailed as e:
            return s.refuse(level, e.reason_code, str(e))
        return None if result is None else finish(s, p, result)
    if not node.anonymous_allowed(s) and not _auth_register(s, p, props):
        return None
    return finish(s, p, None)


def _check_will_topic(node, topic: str) -> None:
    """A will topic no message could have is a protocol violation: v5 gets the code in CONNACK, v3 a
    closed connection. Empty, or deeper than topic_max_depth: malformed (as VerneMQ's parser has it);
    wildcards: 0x90."""
    if not topic:
        raise MalformedPacket("empty will topic")
    if node.too_deep(topic):
        raise MalformedPacket(f"will topic deeper than topic_max_depth {node.config['topic_max_depth']}")
    if not valid_topic_name(topic):
        raise InvalidWillTopic(f"will topic {topic!r} is not a topic name")


def finish(s: Session, p: P.Connect, auth_props: dict | None) -> None:
    """Register the session and send CONNACK (after authentication succeeded)."""
    node = s.node
    cfg = node.config
    level = p.proto_level
    props = p.properties or {}
    s.keepalive = p.keepalive
    s.will = p.will
    if level == 5:
        s.expiry = v5_expiry(props.get("session_expiry_interval", 0))
        s.receive_max = min(props.get("receive_maximum", 65535), cfg["receive_max_client"])
        s.client_max_packet = props.get("maximum_packet_size", 0)
        s.in_quota = cfg["receive_max_broker"]
        s.aliases_in = InboundAliases(cfg["topic_alias_max_client"])
        out_aliases = min(props.get("topic_alias_maximum", 0), cfg["topic_alias_max_broker"])
        s.aliases_out = OutboundAliases(out_aliases) if out_aliases else None
        max_keepalive = cfg["max_keepalive"]
        if max_keepalive and not 0 < s.keepalive <= max_keepalive:
            s.keepalive = max_keepalive
    else:
        # persistent_client_expiration = never is 0 in the config, None (never) here.
        s.expiry = 0 if p.clean_start else (cfg["persistent_client_expiration"] or None)
    if cfg["max_message_rate"]:
        s.throttle = Throttle(cfg["max_message_rate"])
    if node.netsplit_refuses("register"):
        return s.refuse(level, R.SERVER_UNAVAILABLE, "the cluster is split (allow_register_during_netsplit = off)")
    node.wills.resumed(s.sid, p.clean_start)
    opts = QueueOpts(cfg["max_online_messages"], cfg["max_offline_messages"], cfg["queue_type"],
                     s.expiry != 0, cfg["queue_deliver_mode"])
    # In a cluster the session may live on another node: it moves here first (its state, if kept).
    moved = node.cluster.take_over(s.sid, p.clean_start) if node.cluster is not None else None
    queue, present = node.registry.register(s, s.sid, p.clean_start, s.expiry, opts, moved)
    s.queue = queue
    s.connected = True
    s.registered_at = time.time()
    node.sessions.add(s)
    connack_props = _connack_props(s, p, props, auth_props) if level == 5 else None
    s.send_connack(P.Connack(present, 0, connack_props), level)
    s.counters["mqtt_connack_accepted_sent"] += 1
    queue.start_delivery(s)
    s.keep_alive()
    node.hooks_event("on_register_m5" if level == 5 else "on_register", s.peer, s.sid, s.username,
                     *((props,) if level == 5 else ()))


def _connack_props(s: Session, p: P.Connect, props: dict, auth_props: dict | None) -> dict:
    cfg = s.node.config
    out = dict(auth_props or {})
    if s.assigned_id:
        out["assigned_client_identifier"] = s.client_id
    if s.keepalive != p.keepalive:
        out["server_keep_alive"] = s.keepalive
    if cfg["max_message_size"]:
        out["maximum_packet_size"] = cfg["max_message_size"]
    out["receive_maximum"] = cfg["receive_max_broker"]
    if cfg["topic_alias_max_client"]:
        out["topic_alias_maximum"] = cfg["topic_alias_max_client"]
    if props.get("request_response_information") and cfg["response_information"]:
        out["response_information"] = cfg["response_information"]
    return out


def _auth_register(s: Session, p: P.Connect, props: dict) -> bool:
    hooks = s.node.hooks
    plugins = s.listener.opts.get("auth_plugins", ())
    if p.proto_level == 5:
        res, val = hooks.all_till_ok("auth_on_register_m5", s.peer, s.sid, p.username, p.password,
                                     p.clean_start, props, plugins=plugins)
    else:
        res, val = hooks.all_till_ok("auth_on_register", s.peer, s.sid, p.username, p.password,
                                     p.clean_start, plugins=plugins)
    if res == "ok":
        _apply_register_modifiers(s, val)
        return True
    if res == "error" and val in ("invalid_credentials", "bad_username_or_password"):
        s.refuse(p.proto_level, R.BAD_USERNAME_OR_PASSWORD, "invalid credentials")
    elif res == "error" and val == "server_unavailable":  # e.g. vmq_diversity's database is down
        s.refuse(p.proto_level, R.SERVER_UNAVAILABLE, "server unavailable")
    else:
        s.refuse(p.proto_level, R.NOT_AUTHORIZED, f"not authorized ({val or 'no hook answered'})")
    return False


def _apply_register_modifiers(s: Session, mods: dict) -> None:
    if "mountpoint" in mods:
        s.mountpoint = mods["mountpoint"]
    if "client_id" in mods:
        s.client_id = mods["client_id"]
    if "username" in mods:
        s.username = mods["username"]
    s.sid = (s.mountpoint, s.client_id)
