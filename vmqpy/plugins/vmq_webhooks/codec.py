"""VerneMQ's webhook JSON: request bodies from hook arguments, hook answers from responses.

Field names, order and encodings follow VerneMQ's vmq_webhooks_plugin.erl:
peer -> peer_addr/peer_port, subscriber id -> mountpoint/client_id, payload
base64 unless base64encode is off, MQTT 5 properties keyed by VerneMQ's
`p_*` names with user properties and authentication data base64-encoded.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import ujson

from vmqpy.plugins.hooks import ALL_TILL_OK_HOOKS, ERROR, NEXT, OK


@dataclass(frozen=True)
class EndpointOpts:
    """Per (hook, endpoint) options, VerneMQ's defaults."""

    base64_payload: bool = True
    no_payload: bool = False  # only auth_on_publish(_m5) honour it, as in VerneMQ
    response_timeout: int = 5000  # milliseconds


_REG = ("peer", "subscriber_id", "username", "password")
_PUB = ("username", "subscriber_id", "qos", "topic", "payload", "retain")
_SUB = ("username", "subscriber_id", "topics")

# vmqpy's argument order of every hook VerneMQ's webhooks support (docs/hooks.md).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "auth_on_register": _REG + ("clean_session",),
    "auth_on_register_m5": _REG + ("clean_start", "properties"),
    "auth_on_publish": _PUB,
    "auth_on_publish_m5": _PUB + ("properties",),
    "auth_on_subscribe": _SUB,
    "auth_on_subscribe_m5": _SUB + ("properties",),
    "on_auth_m5": ("username", "subscriber_id", "properties"),
    "on_register": ("peer", "subscriber_id", "username"),
    "on_register_m5": ("peer", "subscriber_id", "username", "properties"),
    "on_publish": _PUB,
    "on_publish_m5": _PUB + ("properties",),
    "on_subscribe": _SUB,
    "on_subscribe_m5": _SUB + ("properties",),
    "on_unsubscribe": _SUB,
    "on_unsubscribe_m5": _SUB + ("properties",),
    # VerneMQ sends on_deliver's properties too; vmqpy's callers may omit them.
    "on_deliver": _PUB + ("properties",),
    "on_deliver_m5": _PUB + ("properties",),
    "on_offline_message": ("subscriber_id", "qos", "topic", "payload", "retain"),
    "on_client_wakeup": ("subscriber_id",),
    "on_client_offline": ("subscriber_id",),
    "on_client_gone": ("subscriber_id",),
    "on_session_expired": ("subscriber_id",),
}
# all_till_ok chains: the caller waits for the answer. The rest are events.
SYNC_HOOKS = frozenset(SIGNATURES).intersection(ALL_TILL_OK_HOOKS)
CACHED_HOOKS = frozenset(h for h in SYNC_HOOKS if h.startswith("auth_on_"))
_NO_PAYLOAD_HOOKS = frozenset({"auth_on_publish", "auth_on_publish_m5"})
# Hooks whose ok-answer carries its modifiers in "topics" instead of "modifiers".
_TOPICS_ANSWER_HOOKS = frozenset({"auth_on_subscribe", "on_unsubscribe"})

# vmqpy property name (vmqpy/mqtt/properties.py) -> VerneMQ's JSON key.
_PROP_KEYS = {
    "payload_format_indicator": "p_payload_format_indicator",
    "message_expiry_interval": "p_message_expiry_interval",
    "content_type": "p_content_type",
    "response_topic": "p_response_topic",
    "correlation_data": "p_correlation_data",
    "subscription_identifier": "p_subscription_id",
    "session_expiry_interval": "p_session_expiry_interval",
    "assigned_client_identifier": "p_assigned_client_id",
    "server_keep_alive": "p_server_keep_alive",
    "authentication_method": "p_authentication_method",
    "authentication_data": "p_authentication_data",
    "request_problem_information": "p_request_problem_info",
    "will_delay_interval": "p_will_delay_interval",
    "request_response_information": "p_request_response_info",
    "response_information": "p_response_info",
    "server_reference": "p_server_ref",
    "reason_string": "p_reason_string",
    "receive_maximum": "p_receive_max",
    "topic_alias_maximum": "p_topic_alias_max",
    "topic_alias": "p_topic_alias",
    "maximum_qos": "p_max_qos",
    "retain_available": "p_retain_available",
    "user_property": "p_user_property",
    "maximum_packet_size": "p_max_packet_size",
    "wildcard_subscription_available": "p_wildcard_subs_available",
    "subscription_identifier_available": "p_sub_ids_available",
    "shared_subscription_available": "p_shared_subs_available",
}
_PROP_NAMES = {v: k for k, v in _PROP_KEYS.items()}
# Byte-valued flags that VerneMQ represents as JSON booleans.
_BOOL_PROPS = frozenset({"request_problem_information", "request_response_information", "retain_available",
                         "wildcard_subscription_available", "subscription_identifier_available",
                         "shared_subscription_available"})
_MAX_AGE = re.compile(r"max-age=(\d+)")


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def _text(data: bytes | str | None) -> str | None:
    # Raw binaries go out as JSON strings; invalid UTF-8 is replaced, as jsx does.
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _encode_prop(name: str, value: Any) -> Any:
    if name == "user_property":
        return [{"key": _b64(k), "val": _b64(v)} for k, v in value]
    if name == "authentication_data":
        return _b64(value)
    if name == "payload_format_indicator":
        return "utf8" if value else "unspecified"
    if name in _BOOL_PROPS:
        return bool(value)
    return _text(value)


def _decode_prop(name: str, value: Any) -> Any:
    if name == "user_property":
        return [(base64.b64decode(p["key"]).decode(), base64.b64decode(p["val"]).decode()) for p in value]
    if name == "authentication_data":
        return base64.b64decode(value)
    if name == "correlation_data":
        return value.encode()
    if name == "payload_format_indicator":
        return int(value == "utf8")
    if name in _BOOL_PROPS:
        return int(value)
    return value


def encode_props(props: dict | None) -> dict:
    return {_PROP_KEYS.get(k, "p_" + k): _encode_prop(k, v) for k, v in (props or {}).items()}


def decode_props(props: dict) -> dict:
    names = {k: _PROP_NAMES.get(k, k.removeprefix("p_")) for k in props}
    return {names[k]: _decode_prop(names[k], v) for k, v in props.items()}


def _encode_topic(entry: str | tuple[str, int]) -> str | dict:
    if isinstance(entry, str):  # on_unsubscribe: plain filters
        return entry
    return {"topic": entry[0], "qos": entry[1]}


def encode(hook: str, args: tuple, opts: EndpointOpts) -> dict:
    """The JSON object VerneMQ posts for `hook` called with `args`."""
    body: dict[str, Any] = {}
    names = SIGNATURES[hook]
    args = args + (None,) * (len(names) - len(args))
    for name, value in zip(names, args, strict=True):
        if name == "peer":
            body["peer_addr"], body["peer_port"] = value
        elif name == "subscriber_id":
            body["mountpoint"], body["client_id"] = value
        elif name == "password":
            body["password"] = _text(value)
        elif name == "payload":
            if not (opts.no_payload and hook in _NO_PAYLOAD_HOOKS):
                body["payload"] = _b64(value) if opts.base64_payload else _text(value)
        elif name == "topics":
            body["topics"] = [_encode_topic(t) for t in value]
        elif name == "properties":
            body["properties"] = encode_props(value)
        else:
            body[name] = value
    return body


def dumps(body: dict) -> bytes:
    return ujson.dumps(body, ensure_ascii=False, escape_forward_slashes=False).encode()


def decode_answer(hook: str, raw: bytes, opts: EndpointOpts) -> Any:
    """The hook answer ("ok", ("ok", modifiers), "next", ("error", reason)) in a response body.

    Raises ValueError when the body is not one of VerneMQ's answers.
    """
    doc = ujson.loads(raw)
    result = doc.get("result") if isinstance(doc, dict) else None
    if result == NEXT:
        return NEXT
    if isinstance(result, dict):
        return ERROR, result.get("error", "unknown_error")
    if result != OK:
        raise ValueError(f"unexpected result {result!r}")
    mods = doc.get("topics" if hook in _TOPICS_ANSWER_HOOKS else "modifiers")
    if not mods:
        return OK
    if hook in _TOPICS_ANSWER_HOOKS:
        mods = {"topics": mods}
    return OK, _decode_modifiers(hook, mods, opts)


def _decode_modifiers(hook: str, mods: dict, opts: EndpointOpts) -> dict:
    out = dict(mods)
    if "payload" in out:
        out["payload"] = base64.b64decode(out["payload"]) if opts.base64_payload else out["payload"].encode()
    if "properties" in out:
        out["properties"] = decode_props(out["properties"])
    if "topics" in out and hook.startswith("auth_on_subscribe"):
        out["topics"] = [(t["topic"], t["qos"]) for t in out["topics"]]
    return out


def max_age(cache_control: str | None) -> int:
    """Seconds from a `cache-control: max-age=N` response header; 0 when absent."""
    found = _MAX_AGE.search(cache_control) if cache_control else None
    return int(found.group(1)) if found else 0
