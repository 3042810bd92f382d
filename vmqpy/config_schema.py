"""Value types of vernemq.conf: each turns the text of a value into a Python value and back.

`parse` raises ValueError with the reason an operator reads (it becomes the WHY of a ConfigError).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any


class Type:
    """Base of all value types; `describe` is what the docs say a value may be."""

    describe = "text"

    def parse(self, text: str, base_dir: str) -> Any:
        return text

    def fmt(self, value: Any) -> str:
        return str(value)


class Str(Type):
    pass


class Flag(Type):
    describe = "on or off"
    _WORDS = {"on": True, "true": True, "off": False, "false": False}

    def parse(self, text: str, base_dir: str) -> bool:
        try:
            return self._WORDS[text.lower()]
        except KeyError:
            raise ValueError(f"expected on or off, got {text!r}") from None

    def fmt(self, value: bool) -> str:
        return "on" if value else "off"


@dataclass(frozen=True)
class Int(Type):
    minimum: int | None = 0
    maximum: int | None = None
    infinity: bool = False  # accept the word 'infinity' (math.inf), as VerneMQ's max_connections does
    cores: bool = False  # accept the word 'auto': the number of CPU cores this process may run on

    @property
    def describe(self) -> str:
        bounds = f"an integer >= {self.minimum}" if self.minimum is not None else "an integer"
        if self.maximum is not None:
            bounds += f" and <= {self.maximum}"
        return bounds + (" or infinity" if self.infinity else "") + (" or auto (one per CPU core)"
                                                                      if self.cores else "")

    def parse(self, text: str, base_dir: str) -> int | float:
        if self.infinity and text == "infinity":
            return math.inf
        if self.cores and text == "auto":
            return len(os.sched_getaffinity(0))
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected {self.describe}, got {text!r}") from None
        too_small = self.minimum is not None and value < self.minimum
        if too_small or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"expected {self.describe}, got {value}")
        return value

    def fmt(self, value: int | float) -> str:
        return "infinity" if value == math.inf else str(value)


@dataclass(frozen=True)
class Enum(Type):
    choices: tuple[str, ...]

    @property
    def describe(self) -> str:
        return " | ".join(self.choices)

    def parse(self, text: str, base_dir: str) -> str:
        if text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
        return text


# VerneMQ's units (vmq_schema:string_to_secs): 'm' is a month of 4 weeks, not a minute.
_SECONDS = {"s": 1, "h": 3600, "d": 86400, "w": 7 * 86400, "m": 28 * 86400, "y": 12 * 28 * 86400}


@dataclass(frozen=True)
class Duration(Type):
    """Seconds: a bare integer, or an integer with a unit s, h, d, w, m (4 weeks), y; plus named words."""

    words: tuple[tuple[str, int], ...] = ()  # e.g. (("never", 0),)

    @property
    def describe(self) -> str:
        names = "".join(f" or {word}" for word, _ in self.words)
        return "seconds, or an integer followed by s, h, d, w, m (month) or y" + names

    def parse(self, text: str, base_dir: str) -> int:
        named = dict(self.words)
        if text in named:
            return named[text]
        match = re.fullmatch(r"(\d+)([shdwmy]?)", text)
        if not match:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        return int(match.group(1)) * _SECONDS[match.group(2) or "s"]

    def fmt(self, value: int) -> str:
        for word, number in self.words:
            if value == number:
                return word
        return f"{value}s"


_BYTE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


class ByteSize(Type):
    describe = "bytes: an integer, optionally followed by KB, MB or GB"

    def parse(self, text: str, base_dir: str) -> int:
        match = re.fullmatch(r"(\d+)\s*([KMG]?B?)", text.upper())
        if not match or match.group(2) not in _BYTE_UNITS:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


@dataclass(frozen=True)
class IntList(Type):
    allowed: tuple[int, ...]

    @property
    def describe(self) -> str:
        return "comma separated list of " + ", ".join(map(str, self.allowed))

    def parse(self, text: str, base_dir: str) -> list[int]:
        try:
            values = [int(item) for item in text.split(",")]
        except ValueError:
            raise ValueError(f"expected a {self.describe}, got {text!r}") from None
        wrong = [v for v in values if v not in self.allowed]
        if wrong:
            raise ValueError(f"{wrong[0]} is not one of {', '.join(map(str, self.allowed))}")
        return values

    def fmt(self, value: list[int]) -> str:
        return ",".join(map(str, value))


@dataclass(frozen=True)
class EnumList(Type):
    """A comma separated list of some of `choices`."""

    choices: tuple[str, ...]

    @property
    def describe(self) -> str:
        return "comma separated list of " + ", ".join(self.choices)

    def parse(self, text: str, base_dir: str) -> list[str]:
        values = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [v for v in values if v not in self.choices]
        if wrong:
            raise ValueError(f"{wrong[0]} is not one of {', '.join(self.choices)}")
        return values

    def fmt(self, value: list[str]) -> str:
        return ",".join(value)


class Address(Type):
    describe = "IP:PORT (IPv6 as [ADDR]:PORT)"

    def parse(self, text: str, base_dir: str) -> tuple[str, int]:
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", text)
        if not match:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if port > 65535:
            raise ValueError(f"port {port} is out of range")
        return host, port

    def fmt(self, value: tuple[str, int]) -> str:
        host, port = value
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Path(Type):
    """A file or directory; relative paths are made absolute against the base directory."""

    describe = "a path, relative to the node root (the directory above etc/); $(platform_data_dir) etc. substitute"

    def parse(self, text: str, base_dir: str) -> str:
        # empty means "not set" (e.g. listener.ssl.cafile): it must not become the base directory
        return os.path.normpath(os.path.join(base_dir, text)) if text else ""


class NodeName(Type):
    describe = "name@host"

    def parse(self, text: str, base_dir: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", text):
            raise ValueError(f"expected name@host, got {text!r}")
        return text


# ---------------------------------------------------------------------------------------------------------
# The schema: every key vernemq.conf may hold.


@dataclass(frozen=True)
class Key:
    """One key of vernemq.conf. A name segment `$var` matches one segment of any name (a pattern)."""

    name: str
    type: Type
    default: str | None  # text as written in vernemq.conf; None: unset unless `parent` supplies it
    doc: str
    runtime: bool = False  # may be changed on a running node with `vmq-admin set`
    parent: str | None = None  # key whose value this one inherits when not set (listener levels)
    requires: tuple[str, ...] = ()  # keys (with this key's $vars filled in) that must be set too
    reserved: frozenset[str] = frozenset()  # words a $var may not take (they are option names)

    @property
    def is_pattern(self) -> bool:
        return "$" in self.name


FLAG, STR, PATH, INT = Flag(), Str(), Path(), Int()
MS = Int()  # milliseconds, as VerneMQ counts these intervals
ADDRESS = Address()

MQTT_KINDS = ("tcp", "ssl", "ws", "wss")
TLS_KINDS = ("ssl", "wss")
CLUSTER_KINDS = ("vmq", "vmqs")  # other nodes' links: plain TCP, TLS
LISTENER_KINDS = (*MQTT_KINDS, "http", *CLUSTER_KINDS)
TLS_OPTION_KINDS = (*TLS_KINDS, "vmqs")


@dataclass(frozen=True)
class ListenerOption:
    name: str
    type: Type
    default: str
    doc: str
    kinds: tuple[str, ...]
    top: bool  # has the all-listeners level listener.<option>


LISTENER_OPTIONS = (
    ListenerOption("max_connections", Int(infinity=True), "10000",
                   "Maximum number of concurrent connections per listener (an integer or infinity).",
                   LISTENER_KINDS, True),
    ListenerOption("nr_of_acceptors", Int(minimum=1), "10",
                   "Number of acceptors waiting to concurrently accept new connections.",
                   LISTENER_KINDS, True),
    ListenerOption("mountpoint", STR, "",
                   "Mountpoint: a topic prefix that isolates the clients of a listener (empty: none).",
                   MQTT_KINDS, True),
    ListenerOption("allowed_protocol_versions", IntList((3, 4, 5)), "3,4,5",
                   "MQTT protocol versions a listener accepts: 3 (3.1), 4 (3.1.1), 5 (5.0).",
                   MQTT_KINDS, True),
    ListenerOption("proxy_protocol", FLAG, "off",
                   "Accept connections opened by a proxy speaking the PROXY protocol (v1/v2).",
                   (*MQTT_KINDS, "http"), True),
    ListenerOption("cafile", PATH, "", "PEM file of the CA certificates that are trusted.", TLS_OPTION_KINDS, False),
    ListenerOption("certfile", PATH, "", "PEM encoded server certificate.", TLS_OPTION_KINDS, False),
    ListenerOption("keyfile", PATH, "", "PEM encoded private key of the server certificate.",
                   TLS_OPTION_KINDS, False),
    ListenerOption("crlfile", PATH, "", "PEM file of revoked client certificates (with require_certificate).",
                   TLS_OPTION_KINDS, False),
    ListenerOption("depth", Int(minimum=1), "1",
                   "Maximum client certificate verification depth (1: signed by the root CA).",
                   TLS_OPTION_KINDS, False),
    ListenerOption("require_certificate", FLAG, "off",
                   "Require a client certificate that the cafile verifies.", TLS_OPTION_KINDS, False),
    ListenerOption("use_identity_as_username", FLAG, "off",
                   "Use the client certificate's CN as username (needs require_certificate).",
                   TLS_KINDS, False),
    ListenerOption("tls_version", Enum(("tlsv1.2", "tlsv1.3")), "tlsv1.2",
                   "Minimum TLS protocol version.", TLS_OPTION_KINDS, False),
    ListenerOption("ciphers", STR, "", "Allowed ciphers, colon separated (empty: OpenSSL's defaults).",
                   TLS_OPTION_KINDS, False),
)
HTTP_MODULES = ("vmq_status_http", "vmq_health_http", "vmq_metrics_http", "vmq_http_mgmt_api")
LISTENER_OPTIONS += (
    ListenerOption("http_modules", EnumList(HTTP_MODULES), ",".join(HTTP_MODULES),
                   "HTTP modules a listener serves: vmq_status_http (/status), vmq_health_http (/health), "
                   "vmq_metrics_http (/metrics), vmq_http_mgmt_api (/api/v1).", ("http",), False),
)
LISTENER_OPTION_NAMES = frozenset(option.name for option in LISTENER_OPTIONS)


_LISTENER_USES = {
    "tcp": "MQTT over TCP", "ssl": "MQTT over TLS", "ws": "MQTT over WebSocket",
    "wss": "MQTT over WebSocket with TLS", "http": "HTTP (/health, /metrics, /status, /api/v1)",
    "vmq": "the traffic of the other cluster nodes",
    "vmqs": "the traffic of the other cluster nodes over TLS (then this node dials them over TLS too)",
}


def _listener_keys() -> list[Key]:
    keys = [Key(f"listener.{kind}.$name", ADDRESS, None,
                f"Listener <name> for {what} on IP:PORT; define as many as needed.",
                reserved=LISTENER_OPTION_NAMES) for kind, what in _LISTENER_USES.items()]
    for opt in LISTENER_OPTIONS:
        top = f"listener.{opt.name}"
        if opt.top:
            keys.append(Key(top, opt.type, opt.default, opt.doc))
        for kind in opt.kinds:
            kind_key = f"listener.{kind}.{opt.name}"
            keys.append(Key(kind_key, opt.type, None if opt.top else opt.default, opt.doc,
                            parent=top if opt.top else None))
            keys.append(Key(f"listener.{kind}.$name.{opt.name}", opt.type, None, opt.doc, parent=kind_key,
                            requires=(f"listener.{kind}.$name",)))
    return keys


WEBHOOKS = (
    "auth_on_register", "auth_on_publish", "auth_on_subscribe", "on_register", "on_publish",
    "on_subscribe", "on_unsubscribe", "on_deliver", "on_offline_message", "on_client_wakeup",
    "on_client_offline", "on_client_gone", "on_session_expired", "auth_on_register_m5",
    "auth_on_publish_m5", "auth_on_subscribe_m5", "on_register_m5", "on_publish_m5", "on_subscribe_m5",
    "on_unsubscribe_m5", "on_deliver_m5", "on_auth_m5",
)


def _webhook_keys() -> list[Key]:
    hook, endpoint = "vmq_webhooks.$name.hook", "vmq_webhooks.$name.endpoint"
    return [
        Key("vmq_webhooks.pool_max_connections", Int(minimum=1), "100",
            "Maximum number of HTTP connections per webhook endpoint."),
        Key("vmq_webhooks.pool_timeout", MS, "60000",
            "Milliseconds an unused endpoint connection stays open."),
        Key(hook, Enum(WEBHOOKS), None, "The hook of the webhook named <name>.", requires=(endpoint,)),
        Key(endpoint, STR, None, "The HTTP endpoint (URL) of the webhook named <name>.", requires=(hook,)),
        Key("vmq_webhooks.$name.base64encode", FLAG, "on",
            "Send payloads base64 encoded.", requires=(hook,)),
        Key("vmq_webhooks.$name.no_payload", FLAG, "off",
            "Leave the payload out of auth_on_publish / on_publish calls.", requires=(hook,)),
        Key("vmq_webhooks.$name.response_timeout", MS, "5000",
            "Milliseconds to wait for the endpoint's answer.", requires=(hook,)),
    ]


# vmq_diversity's databases, as its vmq_diversity.schema: (name, default port, hash methods (default
# first) or None, TLS keys, TLS on by default).
_DIVERSITY_DBS = (
    ("postgres", "5432", ("crypt", "bcrypt"), True, False),
    ("cockroachdb", "5432", ("bcrypt", "sha256"), True, True),
    ("mysql", "3306", ("password", "md5", "sha1", "sha256"), False, False),
    ("mysql2", "3306", ("sha256", "password", "md5", "sha1"), True, False),
)
_AUTH_SCRIPTS = ("postgres", "cockroachdb", "mysql", "mysql2", "mongodb", "redis")


def _diversity_tls_keys(db: str, ssl_default: str) -> list[Key]:
    p = f"vmq_diversity.{db}"
    return [
        Key(f"{p}.ssl", FLAG, ssl_default, f"Connect to {db} over TLS."),
        Key(f"{p}.cafile", PATH, "", "PEM file of the CA certificates trusted for the database's certificate."),
        Key(f"{p}.certfile", PATH, "", "PEM client certificate presented to the database."),
        Key(f"{p}.keyfile", PATH, "", "PEM key of the client certificate."),
        Key(f"{p}.ssl.depth", INT, "3", "Longest certificate chain accepted."),
        Key(f"{p}.ssl.customize_hostname_check", Enum(("https",)), "https",
            "Hostname check of the database's certificate (https rules: wildcard certificates match)."),
        Key(f"{p}.ssl.verify", Enum(("verify_none", "verify_peer")), "verify_peer",
            "Whether the database's certificate is verified (verify_peer in production)."),
        Key(f"{p}.ssl.use_system_cas", FLAG, "on", "Also trust the system's CA certificates."),
    ]


def _diversity_sql_keys() -> list[Key]:
    keys = []
    for db, port, methods, tls, ssl_on in _DIVERSITY_DBS:
        p = f"vmq_diversity.{db}"
        keys += [
            Key(f"{p}.host", STR, "localhost", f"Host of the {db} server."),
            Key(f"{p}.port", INT, port, f"Port of the {db} server."),
            Key(f"{p}.user", STR, "root", f"User on the {db} server."),
            Key(f"{p}.password", STR, "password", "Password of that user."),
            Key(f"{p}.database", STR, "vernemq_db", "Database holding vmq_auth_acl."),
            Key(f"{p}.pool_size", Int(minimum=1), "5", "Connections kept to the server."),
            Key(f"{p}.password_hash_method", Enum(methods), methods[0],
                "How passwords are hashed: " + ", ".join(methods) + "."),
        ]
        if tls:
            keys += _diversity_tls_keys(db, "on" if ssl_on else "off")
    return keys


def _diversity_keys() -> list[Key]:
    p = "vmq_diversity"
    keys = [
        Key(f"{p}.script_dir", PATH, "", "Directory whose *.lua scripts are loaded at start; "
            "require() looks here, then in the scripts shipped with vmqpy (empty: those only)."),
        Key(f"{p}.keep_state", FLAG, "off", "Keep a script's Lua state (globals) between calls; "
            "a script's `keep_state` global overrides it."),
        Key(f"{p}.nr_lua_states", Int(minimum=1), "1", "Lua states per script, each serving one call at "
            "a time; a script's `num_states` global overrides it."),
        Key(f"{p}.query_timeout", MS, "5000", "Milliseconds a script waits for a pooled connection and "
            "its answer before the database counts as unavailable."),
        Key(f"{p}.$script.file", PATH, None, "A Lua script of your own, loaded after those of script_dir "
            "(in the order of the names)."),
    ]
    for db in _AUTH_SCRIPTS:
        keys += [
            Key(f"{p}.auth_{db}.enabled", FLAG, "off", f"Authenticate and authorize against {db} with "
                f"VerneMQ's auth/{db}.lua."),
            Key(f"{p}.auth_{db}.script", PATH, "", f"The script of auth_{db} (empty: the shipped "
                f"auth/{db}.lua)."),
        ]
    keys += _diversity_sql_keys()
    keys += [
        Key(f"{p}.mongodb.host", STR, "localhost", "Host of the MongoDB server."),
        Key(f"{p}.mongodb.srv", STR, "", "DNS SRV name of the MongoDB cluster (instead of host and port)."),
        Key(f"{p}.mongodb.port", INT, "27017", "Port of the MongoDB server."),
        Key(f"{p}.mongodb.login", STR, None, "User on the MongoDB server."),
        Key(f"{p}.mongodb.password", STR, None, "Password of that user."),
        Key(f"{p}.mongodb.auth_source", STR, "admin", "Database the MongoDB user is defined in."),
        Key(f"{p}.mongodb.database", STR, None, "Database holding vmq_acl_auth."),
        Key(f"{p}.mongodb.pool_size", Int(minimum=1), "5", "Connections kept to the server."),
        Key(f"{p}.mongodb.w_mode", Enum(("safe", "unsafe")), "safe",
            "Write concern: safe waits for the acknowledgement."),
        Key(f"{p}.mongodb.read_preference",
            Enum(("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")),
            "primaryPreferred", "Which members reads go to."),
        *_diversity_tls_keys("mongodb", "off"),
        Key(f"{p}.mongodb.ssl.sni", STR, None, "Server name sent in the TLS handshake."),
        Key(f"{p}.redis.host", STR, "localhost", "Host of the Redis server."),
        Key(f"{p}.redis.port", INT, "6379", "Port of the Redis server."),
        Key(f"{p}.redis.password", STR, "", "Password on the Redis server (empty: none)."),
        Key(f"{p}.redis.user", STR, "", "User on the Redis server (empty: the default user)."),
        Key(f"{p}.redis.database", INT, "0", "Redis database number."),
        Key(f"{p}.redis.pool_size", Int(minimum=1), "5", "Connections kept to the server."),
        Key(f"{p}.memcache.host", STR, "localhost", "Host of the memcached server."),
        Key(f"{p}.memcache.port", INT, "11211", "Port of the memcached server."),
    ]
    return keys


def _jwt_keys() -> list[Key]:
    p = "vmq_jwt"
    return [
        Key(f"{p}.algorithms", EnumList(("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
                                         "ES384", "ES512")), "HS256,RS256,ES256",
            "Signature algorithms accepted; any other (none included) is refused."),
        Key(f"{p}.secret", STR, None, "Shared secret of HS* tokens."),
        Key(f"{p}.public_key", PATH, "", "PEM public key of RS*/ES* tokens."),
        Key(f"{p}.jwks_file", PATH, "", "JWKS file (JSON) of public keys, chosen by the token's kid."),
        Key(f"{p}.audience", STR, None, "Required aud claim (unset: a token with an aud is refused)."),
        Key(f"{p}.issuer", STR, None, "Required iss claim (unset: not checked)."),
        Key(f"{p}.require_exp", FLAG, "on", "Refuse tokens without an exp claim."),
        Key(f"{p}.leeway", INT, "0", "Seconds of clock skew allowed for exp and nbf."),
        Key(f"{p}.username_claim", STR, "sub", "Claim that becomes the session's username."),
        Key(f"{p}.publish_acl_claim", STR, "publish_acl", "Claim listing the publish ACL patterns."),
        Key(f"{p}.subscribe_acl_claim", STR, "subscribe_acl", "Claim listing the subscribe ACL patterns."),
    ]


def _bridge_keys() -> list[Key]:
    common = (
        ("cleansession", FLAG, "off", "Clean session: drop the remote subscriptions when the link drops."),
        ("client_id", STR, "auto", "Client id on the remote broker (auto: <name>.<hostname>)."),
        ("keepalive_interval", INT, "60", "Seconds without traffic before the bridge pings."),
        ("username", STR, None, "Username on the remote broker."),
        ("password", STR, None, "Password on the remote broker."),
        ("restart_timeout", INT, "10", "Seconds to wait before reconnecting."),
        ("try_private", FLAG, "on", "Tell the remote broker that this client is a bridge."),
        ("max_outgoing_buffered_messages", INT, "0",
         "Messages buffered while the remote broker is unreachable (0: none)."),
        ("topic.$id", STR, None,
         "Shared topic: pattern [[[ out | in | both ] qos-level] local-prefix remote-prefix]."),
    )
    tls = (
        ("cafile", PATH, "", "PEM file of the CA certificates that are trusted."),
        ("certfile", PATH, "", "PEM encoded client certificate."),
        ("keyfile", PATH, "", "PEM encoded private key of the client certificate."),
        ("insecure", FLAG, "off", "Skip the remote host name check (never in production)."),
        ("tls_version", Enum(("tlsv1.2", "tlsv1.3")), "tlsv1.2", "Minimum TLS protocol version."),
    )
    keys = []
    for proto, settings, over in (("tcp", common, "TCP"), ("ssl", common + tls, "TLS")):
        bridge = f"vmq_bridge.{proto}.$name"
        keys.append(Key(bridge, ADDRESS, None, f"Bridge <name> over {over} to the broker at HOST:PORT."))
        keys += [Key(f"{bridge}.{name}", kind, default, doc, requires=(bridge,))
                 for name, kind, default, doc in settings]
    return keys


_LOG_LEVELS = Enum(("debug", "info", "warning", "error", "critical"))

KEYS: tuple[Key, ...] = (
    # node
    Key("nodename", NodeName(), "VerneMQ@127.0.0.1", "Name of this node: name@host, unique in the cluster."),
    Key("distributed_cookie", STR, "vmq_cookie", "Shared secret the cluster nodes authenticate each other with."),
    Key("platform_data_dir", PATH, "./data", "Directory of the node's persistent data."),
    Key("platform_log_dir", PATH, "./log", "Directory of the node's log files."),
    Key("platform_etc_dir", PATH, None, "Directory of vmq.acl, vmq.passwd and certificates "
        "(default: the directory holding this file)."),
    Key("metadata.dir", PATH, "$(platform_data_dir)/meta",
        "Directory of the metadata store (subscriptions, retained messages)."),
    Key("message_store.dir", PATH, "$(platform_data_dir)/msgstore",
        "Directory of the offline message store."),
    Key("message_store.sync", FLAG, "off", "fsync every message store write (safer, slower)."),
    Key("admin.socket", PATH, "$(platform_data_dir)/vmq.sock",
        "Local socket vmq-admin talks to the node on."),
    Key("pid_file", PATH, "$(platform_data_dir)/vernemq.pid", "File holding the pid of a started node."),
    Key("nr_of_workers", Int(minimum=1, cores=True), "auto",
        "Number of worker processes serving MQTT connections; 1 runs the node as one process."),
    *_listener_keys(),
    # sessions and queues
    Key("allow_anonymous", FLAG, "off", "Allow clients to connect without authentication (testing only).",
        runtime=True),
    Key("allow_register_during_netsplit", FLAG, "off",
        "Allow new client connections while the cluster is inconsistent.", runtime=True),
    Key("allow_publish_during_netsplit", FLAG, "off",
        "Allow publishes while the cluster is inconsistent.", runtime=True),
    Key("allow_subscribe_during_netsplit", FLAG, "off",
        "Allow new subscriptions while the cluster is inconsistent.", runtime=True),
    Key("allow_unsubscribe_during_netsplit", FLAG, "off",
        "Allow unsubscribes while the cluster is inconsistent.", runtime=True),
    Key("allow_multiple_sessions", FLAG, "off",
        "Allow several connections with the same client id (non-standard).", runtime=True),
    Key("queue_deliver_mode", Enum(("fanout", "balance")), "fanout",
        "With multiple sessions: deliver to all of them (fanout) or to one at random (balance).",
        runtime=True),
    Key("queue_type", Enum(("fifo", "lifo")), "fifo", "Order in which a queue delivers its messages.",
        runtime=True),
    Key("coordinate_registrations", FLAG, "on",
        "Disconnect another client with the same client id at once (on) or eventually (off).",
        runtime=True),
    Key("retry_interval", Duration(), "20",
        "Seconds to wait for the acknowledgement of a QoS 1 or 2 message before resending it.",
        runtime=True),
    Key("max_client_id_size", Int(minimum=1), "100", "Maximum length of a client id (MQTT 3.1 says 23).",
        runtime=True),
    Key("persistent_client_expiration", Duration((("never", 0),)), "never",
        "Remove persistent sessions that stay disconnected this long (non-standard).", runtime=True),
    Key("max_last_will_delay", Duration((("client", 2**32 - 1),)), "client",
        "Cap on the MQTT 5 will delay; client: use the client's value.", runtime=True),
    Key("suppress_lwt_on_session_takeover", FLAG, "off",
        "Do not publish the last will when a new connection takes over the session.", runtime=True),
    Key("max_inflight_messages", INT, "20",
        "QoS 1 and 2 messages in flight per session (0: no limit, 1: strict order).", runtime=True),
    Key("max_online_messages", Int(minimum=-1), "1000",
        "Messages a connected client's queue holds beyond those in flight (-1: no limit).", runtime=True),
    Key("max_offline_messages", Int(minimum=-1), "1000",
        "QoS 1 and 2 messages kept for a disconnected client (-1: no limit, 0: none).", runtime=True),
    Key("upgrade_outgoing_qos", FLAG, "off",
        "Deliver with the subscription's QoS even when the message's QoS is lower (non-standard).",
        runtime=True),
    Key("max_message_size", ByteSize(), "0",
        "Maximum size of an MQTT packet a client may send (0: no limit).", runtime=True),
    Key("max_message_rate", INT, "0", "Maximum publishes per second per session (0: no limit).",
        runtime=True),
    Key("receive_max_client", Int(minimum=1, maximum=65535), "65535",
        "MQTT 5 receive maximum the broker announces to clients.", runtime=True),
    Key("receive_max_broker", Int(minimum=1, maximum=65535), "65535",
        "MQTT 5 receive maximum the broker uses towards a client that sets none.", runtime=True),
    Key("topic_alias_max_client", Int(maximum=65535), "0",
        "MQTT 5 topic aliases a client may use towards the broker (0: none).", runtime=True),
    Key("topic_alias_max_broker", Int(maximum=65535), "0",
        "MQTT 5 topic aliases the broker may use towards a client (0: none).", runtime=True),
    Key("max_keepalive", Int(maximum=65535), "0",
        "MQTT 5: largest keep alive a client may use; one asking more, or none, gets this as "
        "Server Keep Alive (0: accept the client's).", runtime=True),
    Key("response_information", STR, "",
        "MQTT 5 response information sent to clients that ask for it (empty: none)."),
    Key("mqtt_connect_timeout", MS, "5000",
        "Milliseconds a new connection has to send its CONNECT.", runtime=True),
    Key("shared_subscription_policy", Enum(("prefer_local", "local_only", "random")), "prefer_local",
        "Which subscriber of a shared subscription gets a message.", runtime=True),
    # cluster
    Key("cluster_heartbeat_timeout", MS, "3000",
        "Milliseconds without a word from another node before its link is taken down and the node "
        "counts as unreachable (netsplit); heartbeats go out every third of it (0: off)."),
    Key("ring_creation_size", Int(minimum=1), "64",
        "Partitions of the ring that picks, for each client id, the node coordinating its registration "
        "(a power of 2; the same on every node)."),
    Key("remote_enqueue_timeout", MS, "5000",
        "Milliseconds to wait when enqueueing a message in a queue on another node.", runtime=True),
    Key("outgoing_clustering_buffer_size", ByteSize(), "10000",
        "Bytes buffered for a cluster node that cannot be reached."),
    Key("offline_message_replica", FLAG, "off",
        "Keep a copy of every offline message of a persistent session on the node that takes the "
        "session over if this node is removed while down, so that such a leave loses none of them "
        "(one more cluster write per stored and per delivered offline message; vmqpy's own)."),
    Key("max_msgs_per_drain_step", Int(minimum=1), "100",
        "Messages moved per step when a queue migrates to another node."),
    # overload protection (vmqpy's own)
    Key("overload.max_queued_messages", INT, "0",
        "Refuse new connections while the node holds more queued messages than this (0: off).",
        runtime=True),
    Key("overload.max_memory", ByteSize(), "0",
        "Refuse new connections while the node uses more memory than this (0: off).", runtime=True),
    # $SYS and metrics
    Key("systree_enabled", FLAG, "on", "Publish the $SYS tree.", runtime=True),
    Key("systree_interval", MS, "20000", "Milliseconds between $SYS updates (0: off).", runtime=True),
    Key("graphite_enabled", FLAG, "off", "Push metrics to Graphite (see graphite_host).", runtime=True),
    Key("graphite_host", STR, "localhost", "Graphite server host name.", runtime=True),
    Key("graphite_port", Int(maximum=65535), "2003", "Graphite server TCP port.", runtime=True),
    Key("graphite_interval", MS, "20000", "Milliseconds between pushes to Graphite.", runtime=True),
    Key("graphite_prefix", STR, "", "Prefix of every metric sent to Graphite."),
    Key("graphite_api_key", STR, "", "Graphite API key (e.g. hostedgraphite.com)."),
    Key("graphite_include_labels", FLAG, "off", "Also send the labelled variants of metrics.", runtime=True),
    Key("graphite_connect_timeout", MS, "5000", "Milliseconds to wait when connecting to Graphite."),
    Key("graphite_reconnect_timeout", MS, "15000", "Milliseconds to wait before reconnecting to Graphite."),
    # logging
    Key("log.console", Enum(("console", "file", "both", "off")), "file",
        "Where the console log goes: console (stdout), file, both, or off."),
    Key("log.console.level", _LOG_LEVELS, "info", "Lowest severity the console log records."),
    Key("log.console.file", PATH, "$(platform_log_dir)/console.log", "File of the console log."),
    Key("log.error.file", PATH, "$(platform_log_dir)/error.log", "File of the error log (errors only)."),
    Key("log.syslog", FLAG, "off", "Also send the log to syslog."),
    Key("log.rotation.size", ByteSize(), "10MB", "Rotate a log file when it reaches this size (0: never)."),
    Key("log.rotation.keep", INT, "5", "Rotated log files kept per log."),
    # plugins
    Key("plugins.vmq_passwd", FLAG, "on", "File based authentication plugin."),
    Key("plugins.vmq_acl", FLAG, "on", "File based authorization plugin."),
    Key("plugins.vmq_webhooks", FLAG, "off", "Webhook based plugins."),
    Key("plugins.vmq_bridge", FLAG, "off", "MQTT bridge to other brokers."),
    Key("plugins.vmq_diversity", FLAG, "off", "Lua scripts; database authentication (docs/diversity.md)."),
    Key("plugins.vmq_jwt", FLAG, "off", "JWT authentication: the CONNECT password is a token (docs/jwt.md)."),
    Key("plugins.$name", FLAG, None, "Enable (on) or disable (off) the plugin <name>; "
        "its settings are <name>.<setting> lines."),
    Key("plugins.$name.path", PATH, None, "Directory of a plugin that is not shipped with vmqpy."),
    Key("vmq_acl.acl_file", PATH, "$(platform_etc_dir)/vmq.acl", "The ACL file.", runtime=True),
    Key("vmq_acl.acl_reload_interval", INT, "10",
        "Seconds between checks for a changed ACL file (0: never).", runtime=True),
    Key("vmq_passwd.password_file", PATH, "$(platform_etc_dir)/vmq.passwd", "The password file.",
        runtime=True),
    Key("vmq_passwd.password_reload_interval", INT, "10",
        "Seconds between checks for a changed password file (0: never).", runtime=True),
    *_webhook_keys(),
    *_bridge_keys(),
    *_diversity_keys(),
    *_jwt_keys(),
)


def _compile(name: str) -> re.Pattern[str]:
    parts = (rf"(?P<{part[1:]}>[\w-]+)" if part.startswith("$") else re.escape(part)
             for part in name.split("."))
    return re.compile(r"\.".join(parts))


_EXACT = {key.name: key for key in KEYS if not key.is_pattern}
_PATTERNS = [(_compile(key.name), key) for key in KEYS if key.is_pattern]


def lookup(name: str) -> tuple[Key, dict[str, str]] | None:
    """The schema key `name` is an instance of, with the values of its $vars; exact keys win."""
    if name in _EXACT:
        return _EXACT[name], {}
    for regex, key in _PATTERNS:
        match = regex.fullmatch(name)
        if match and not key.reserved.intersection(match.groupdict().values()):
            return key, match.groupdict()
    return None


def fill(template: str, variables: dict[str, str]) -> str:
    """`template` with each `$var` segment replaced by its value."""
    return ".".join(variables[p[1:]] if p.startswith("$") else p for p in template.split("."))
