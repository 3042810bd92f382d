"""vmq_http_pub: publish over HTTP, `POST /restmqtt/api/v1/publish`, as VerneMQ's vmq_http_pub.

The request says what to publish in one of three ways (VerneMQ's):
- JSON body: {"topic", "payload", "qos" (0), "retain" (false), "user_properties" ({}),
  "client_id", "user", "password"}; `?encoding=base64` says the payload is base64;
- headers `topic`, `qos`, `retain`, `user_properties` (JSON), `client_id`, `user`,
  `password`, the body being the payload as is;
- URL parameters `topic`, `qos`, `retain`, `client_id`, `user`, `password`, the
  body being the payload.

Who may call the endpoint is the HTTP module's auth mode (http_module.vmq_http_pub.auth.mode:
apikey with scope httppub, by default, or noauth). What the message may do is the MQTT auth
mode (vmq_http_pub.mqtt_auth.mode, per listener
listener.http.NAME.http_modules.vmq_http_pub.mqtt_auth.mode):
- on-behalf-of: the request's client_id/user/password go through auth_on_register and
  auth_on_publish as an MQTT client's would (their modifiers apply; no session is made);
- predefined: the same with vmq_http_pub.mqtt_auth.user/password/client_id from the config.
With allow_anonymous = on neither hook runs, as in VerneMQ.
Answers are text/plain with VerneMQ's texts and status codes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import ujson

from vmqpy.broker.message import Msg
from vmqpy.mqtt.topic import valid_topic_name

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

PATH = "/restmqtt/api/v1/publish"
MAX_BODY = 256 * 1024 * 1024
TEXTS = {
    "invalid_topic": (400, "Invalid topic"),
    "invalid_qos_value": (400, "Invalid QoS value. Must be in range 0..2"),
    "invalid_retain_value": (400, "Invalid retain flag. Must be in true or false"),
    "invalid_user_properties": (400, "User properties need to be a key/value list (json encoded)"),
    "ok_published": (200, "Published"),
    "parameters_in_header_and_url": (400, "Parameters found in header as well as url-encoded"),
    "content_not_json": (400, "Content is not a valid json"),
    "wrong_url_parameters": (400, "Only encoding plain or base64 allows. No more URL parameters supported."),
    "authentication_failed": (401, "Authentication failure."),
    "authorization_failed": (403, "Authorization failure."),
    "message_too_large": (413, "Payload too large."),
    "unknown_payload_encoding": (400, "Unknown payload encoding"),
}
COUNTED = {400: "http_pub_api_error", 401: "http_pub_auth_error", 403: "http_pub_auth_error"}


class Refused(Exception):
    """A request answered with one of TEXTS' entries (its key is the argument)."""


@dataclass
class Request:
    topic: Any
    payload: bytes
    qos: Any = 0
    retain: Any = False
    user_properties: Any = None
    client_id: str | None = None
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class _NoListener:
    """Node.anonymous_allowed asks a publisher's listener for allow_anonymous_override: none here."""

    opts: dict = field(default_factory=dict)


_NO_LISTENER = _NoListener()


@dataclass
class _Client:
    """What the auth hooks and Node.authorize_publish read of a publisher."""

    sid: tuple[str, str]
    username: str | None
    counters: dict[str, int]  # the node's, as an MQTT 3.1.1 session counts
    proto_level: int = 4
    authz_plugins: tuple = ()  # every plugin decides, as on a listener without authz_plugins
    listener: Any = _NO_LISTENER


def handle(node: Node, listener: str, environ: dict) -> tuple[int, str]:
    """Answer one request: (HTTP status, text)."""
    try:
        peer = (environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0))
        publish(node, listener, parse(environ), peer)
        result = "ok_published"
    except Refused as e:
        result = str(e)
    status, text = TEXTS[result]
    if status in COUNTED:
        node.metrics.counters[COUNTED[status]] += 1
    return status, text


def parse(environ: dict) -> Request:
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    body = _body(environ)
    in_headers = "HTTP_TOPIC" in environ
    if in_headers and "topic" in query:
        raise Refused("parameters_in_header_and_url")
    encoding = query.get("encoding")
    if encoding is not None and (encoding not in ("plain", "base64") or len(query) != 1):
        raise Refused("wrong_url_parameters")
    if in_headers:
        header = environ.get
        return Request(header("HTTP_TOPIC"), body, header("HTTP_QOS", 0), header("HTTP_RETAIN", "false"),
                       _json_properties(header("HTTP_USER_PROPERTIES")), header("HTTP_CLIENT_ID"),
                       header("HTTP_USER"), header("HTTP_PASSWORD"))
    if "topic" in query:
        return Request(query["topic"], body, query.get("qos", 0), query.get("retain", False), None,
                       query.get("client_id"), query.get("user"), query.get("password"))
    return _from_json(body, encoding)


def _body(environ: dict) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise Refused("message_too_large")
    return environ["wsgi.input"].read(length) if length else b""


def _json_properties(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ujson.loads(text)
    except ValueError:
        raise Refused("invalid_user_properties") from None


def _from_json(body: bytes, encoding: str | None) -> Request:
    try:
        data = ujson.loads(body)
    except ValueError:
        raise Refused("content_not_json") from None
    if not isinstance(data, dict):
        raise Refused("content_not_json")
    payload = data.get("payload", "")
    if encoding == "base64":
        try:
            raw = base64.b64decode(str(payload), validate=True)
        except (binascii.Error, ValueError):
            raise Refused("unknown_payload_encoding") from None
    else:
        raw = payload.encode() if isinstance(payload, str) else ujson.dumps(payload).encode()
    return Request(data.get("topic"), raw, data.get("qos", 0), data.get("retain", False),
                   data.get("user_properties"), data.get("client_id"), data.get("user"), data.get("password"))


def _qos(value: Any) -> int:
    try:
        qos = int(value)
    except (TypeError, ValueError):
        raise Refused("invalid_qos_value") from None
    if not 0 <= qos <= 2:
        raise Refused("invalid_qos_value")
    return qos


def _retain(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise Refused("invalid_retain_value")


def _properties(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]  # VerneMQ takes a list holding one map
    if not isinstance(value, dict):
        raise Refused("invalid_user_properties")
    return [(str(k), str(v)) for k, v in value.items()]


def setting(node: Node, listener: str, name: str) -> Any:
    """A vmq_http_pub setting: the listener's (listener.http.NAME.http_modules.vmq_http_pub.X), else the
    global one (vmq_http_pub.X)."""
    local = node.config.get(f"listener.{listener}.http_modules.vmq_http_pub.{name}")
    return local if local is not None else node.config.get(f"vmq_http_pub.{name}")


def publish(node: Node, listener: str, req: Request, peer: tuple[str, int]) -> None:
    topic = req.topic
    if not isinstance(topic, str) or not topic or topic.startswith("$") or not valid_topic_name(topic):
        raise Refused("invalid_topic")
    qos, retain, props = _qos(req.qos), _retain(req.retain), _properties(req.user_properties)
    mountpoint = setting(node, listener, "mountpoint") or ""
    if setting(node, listener, "mqtt_auth.mode") == "predefined":
        req.user = setting(node, listener, "mqtt_auth.user")
        req.password = setting(node, listener, "mqtt_auth.password")
        req.client_id = setting(node, listener, "mqtt_auth.client_id")
    client = _Client((mountpoint, req.client_id or ""), req.user, node.metrics.counters)
    msg = Msg(topic, req.payload, qos, retain, {"user_property": props} if props else None, mountpoint)
    limit = node.config["max_message_size"]
    if not node.config["allow_anonymous"]:
        limit = _authenticate(node, client, req, peer, limit)
        msg.mountpoint = client.sid[0]
        if not node.authorize_publish(client, msg):
            raise Refused("authorization_failed")
    if limit > 1 and len(msg.payload) > limit:
        raise Refused("message_too_large")
    node.publish(msg)
    node.metrics.counters["http_pub_published"] += 1


def _authenticate(node: Node, client: _Client, req: Request, peer: tuple[str, int], limit: int) -> int:
    """auth_on_register for the request's credentials: its modifiers apply (a mountpoint, a
    max_message_size; not another client id). The message size limit that applies."""
    password = req.password.encode() if isinstance(req.password, str) else req.password
    res, mods = node.hooks.all_till_ok("auth_on_register", peer, client.sid, req.user, password, True)
    if res != "ok":
        raise Refused("authentication_failed")
    mods = mods or {}
    if mods.get("client_id", client.sid[1]) != client.sid[1]:
        raise Refused("authentication_failed")
    client.sid = (mods.get("mountpoint", client.sid[0]), client.sid[1])
    client.username = mods.get("username", client.username)
    return int(mods.get("max_message_size", limit))
