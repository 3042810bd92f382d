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

if TYPE_CHECKING:
    from vmqpy.broker.session import Session

log = logging.getLogger(__name__)

NEVER_EXPIRES = 0xFFFFFFFF


def v5_expiry(interval: int) -> float | None:
    """A Session Expiry Interval as the registry counts it: seconds, None = never."""
    return None if interval == NEVER_EXPIRES else interval


def on_connect(s: Session, p: P.Connect) -> None:
    node = s.node
    cfg = node.config
    node.metrics.counters["mqtt_connect_received"] += 1
    level = p.proto_level
    s.proto_level = level
    if level not in s.listener.opts.get("allowed_protocol_versions", (3, 4, 5)):
        return s.refuse(level, R.UNSUPPORTED_PROTOCOL_VERSION, f"protocol level {level} not allowed")
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
    s.client_id = client_id
    s.sid = (s.mountpoint, client_id)
    if s.listener.opts.get("use_identity_as_username"):  # the client certificate's CN, as VerneMQ's preauth
        p.username = tls.common_name(s.sock) or p.username
    s.username = p.username
    method = props.get("authentication_method") if level == 5 else None
    if method is not None:
        # Enhanced authentication stands in for auth_on_register_m5.
        try:
            result = auth.start(s, p, method, props)
        except auth.AuthFailed as e:
            return s.refuse(level, e.reason_code, str(e))
        return None if result is None else finish(s, p, result)
    if not cfg["allow_anonymous"] and not _auth_register(s, p, props):
        return None
    return finish(s, p, None)


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
        s.receive_max = props.get("receive_maximum", cfg["receive_max_broker"])
        s.client_max_packet = props.get("maximum_packet_size", 0)
        s.in_quota = cfg["receive_max_client"]
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
    node.metrics.counters["mqtt_connack_accepted_sent"] += 1
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
    if cfg["receive_max_client"] < 65535:
        out["receive_maximum"] = cfg["receive_max_client"]
    if cfg["topic_alias_max_client"]:
        out["topic_alias_maximum"] = cfg["topic_alias_max_client"]
    if props.get("request_response_information") and cfg["response_information"]:
        out["response_information"] = cfg["response_information"]
    return out


def _auth_register(s: Session, p: P.Connect, props: dict) -> bool:
    hooks = s.node.hooks
    if p.proto_level == 5:
        res, val = hooks.all_till_ok("auth_on_register_m5", s.peer, s.sid, p.username, p.password,
                                     p.clean_start, props)
    else:
        res, val = hooks.all_till_ok("auth_on_register", s.peer, s.sid, p.username, p.password,
                                     p.clean_start)
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
