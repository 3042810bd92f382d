"""The schema of vernemq.conf: every key it may hold, with its type (config_types), default and doc."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmqpy.config_ignored import IGNORED
from vmqpy.config_types import (
    Address,
    BridgeTopic,
    ByteSize,
    Duration,
    Enum,
    EnumList,
    ErlangTerm,
    Flag,
    Int,
    IntList,
    Mountpoint,
    NodeName,
    Path,
    Str,
    Type,
    Words,
)


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
    ignored: str = ""  # why a VerneMQ key has no effect here (config_ignored); logged at start when set

    @property
    def is_pattern(self) -> bool:
        return "$" in self.name


FLAG, STR, PATH, INT = Flag(), Str(), Path(), Int()
MS = Int()  # milliseconds, as VerneMQ counts these intervals
ADDRESS = Address()

MQTT_KINDS = ("tcp", "ssl", "ws", "wss")
TLS_KINDS = ("ssl", "wss")
CLUSTER_KINDS = ("vmq", "vmqs")  # other nodes' links: plain TCP, TLS
HTTP_KINDS = ("http", "https")
LISTENER_KINDS = (*MQTT_KINDS, *HTTP_KINDS, *CLUSTER_KINDS)
TLS_OPTION_KINDS = (*TLS_KINDS, "vmqs", "https")


@dataclass(frozen=True)
class ListenerOption:
    name: str
    type: Type
    default: str
    doc: str
    kinds: tuple[str, ...]
    top: bool  # has the all-listeners level listener.<option>
    ignored: str = ""  # as Key.ignored


LISTENER_OPTIONS = (
    ListenerOption("max_connections", Int(infinity=True), "10000",
                   "Maximum number of concurrent connections per listener (an integer or infinity).",
                   LISTENER_KINDS, True),
    ListenerOption("nr_of_acceptors", Int(minimum=1), "10",
                   "Number of acceptors waiting to concurrently accept new connections.",
                   LISTENER_KINDS, True, ignored="Erlang acceptor pool size: vmqpy accepts on one greenlet "
                   "per listener"),
    ListenerOption("mountpoint", Mountpoint(), "off",
                   "Mountpoint: a topic prefix that isolates the clients of a listener (off or empty: none).",
                   MQTT_KINDS, True),
    ListenerOption("max_connection_lifetime", INT, "0",
                   "Seconds a client may stay connected; then it is disconnected (MQTT 5: reason 0xA0, "
                   "Maximum connect time). 0: no limit.", MQTT_KINDS, True),
    ListenerOption("allow_anonymous_override", FLAG, "off",
                   "Let clients of this listener connect without authentication, whatever allow_anonymous says.",
                   MQTT_KINDS, False),
    ListenerOption("auth_plugins", Words(), "",
                   "Plugins, in order, that authenticate this listener's clients (auth_on_register); "
                   "empty: every plugin.", MQTT_KINDS, False),
    ListenerOption("authz_plugins", Words(), "",
                   "Plugins, in order, that authorize this listener's publishes and subscriptions "
                   "(auth_on_publish, auth_on_subscribe); empty: every plugin.", MQTT_KINDS, False),
    ListenerOption("allowed_protocol_versions", IntList((3, 4, 5, 131, 132)), "3,4,5,131,132",
                   "MQTT protocol versions a listener accepts: 3 (3.1), 4 (3.1.1), 5 (5.0), 131 (3.1 bridge), "
                   "132 (3.1.1 bridge: vmqpy's bridge speaks it, so vmqpy's default has it besides "
                   "VerneMQ's 3,4,5,131).", MQTT_KINDS, True),
    ListenerOption("proxy_protocol", FLAG, "off",
                   "Accept connections opened by a proxy speaking the PROXY protocol (v1/v2).",
                   (*MQTT_KINDS, "http"), True),
    ListenerOption("max_request_line_length", Int(minimum=1), "8000",
                   "Longest HTTP request line (of an HTTP request or a WebSocket upgrade); longer: 414.",
                   ("http", "https", "ws", "wss"), False),
    ListenerOption("max_header_value_length", Int(minimum=1), "4096",
                   "Longest HTTP header value (of an HTTP request or a WebSocket upgrade); longer: 431.",
                   ("http", "https", "ws", "wss"), False),
    ListenerOption("proxy_protocol_use_cn_as_username", FLAG, "on",
                   "With proxy_protocol: the client certificate CN a PROXY v2 header carries (PP2_SUBTYPE_SSL_CN) "
                   "is the client's username.", ("tcp", "ws", "http"), False),
    ListenerOption("proxy_xff_support", FLAG, "off",
                   "Take the client address from the X-Forwarded-For header of the WebSocket upgrade, when "
                   "the connecting proxy is in proxy_xff_trusted_intermediate.", ("ws",), False),
    ListenerOption("proxy_xff_trusted_intermediate", STR, "",
                   "Addresses of the proxies trusted to set X-Forwarded-For, separated by ;.", ("ws",), False),
    ListenerOption("proxy_xff_use_cn_as_username", FLAG, "off",
                   "With proxy_xff_support: the username is the value of the proxy_xff_cn_header header "
                   "(a connection without it is refused).", ("ws",), False),
    ListenerOption("proxy_xff_cn_header", STR, "x-ssl-client-cn",
                   "Header holding the client certificate CN set by the proxy.", ("ws",), False),
    ListenerOption("cafile", PATH, "", "PEM file of the CA certificates that are trusted.", TLS_OPTION_KINDS, False),
    ListenerOption("certfile", PATH, "", "PEM encoded server certificate.", TLS_OPTION_KINDS, False),
    ListenerOption("keyfile", PATH, "", "PEM encoded private key of the server certificate.",
                   TLS_OPTION_KINDS, False),
    ListenerOption("crlfile", PATH, "", "PEM file of revoked client certificates (with require_certificate).",
                   TLS_OPTION_KINDS, False),
    ListenerOption("depth", INT, "1",
                   "Intermediate CAs a client certificate chain may have between the client certificate and "
                   "the root (0: signed by the root itself), as Erlang's ssl depth.", TLS_OPTION_KINDS, False),
    ListenerOption("require_certificate", FLAG, "off",
                   "Require a client certificate that the cafile verifies.", TLS_OPTION_KINDS, False),
    ListenerOption("use_identity_as_username", FLAG, "off",
                   "Use the client certificate's CN as username (needs require_certificate).",
                   TLS_KINDS, False),
    ListenerOption("tls_version", Enum(("tlsv1.2", "tlsv1.3")), "tlsv1.2",
                   "Minimum TLS protocol version.", TLS_OPTION_KINDS, False),
    ListenerOption("ciphers", STR, "", "Allowed ciphers, colon separated (empty: OpenSSL's defaults).",
                   TLS_OPTION_KINDS, False),
    ListenerOption("keypasswd", STR, "", "Password of an encrypted keyfile.", TLS_OPTION_KINDS, False),
    ListenerOption("eccs", STR, "",
                   "Elliptic curve for ECDHE, e.g. [secp384r1] (empty: OpenSSL's; Python's ssl sets one).",
                   TLS_OPTION_KINDS, False),
    ListenerOption("tls_handshake_timeout", Int(infinity=True), "5000",
                   "Milliseconds a new TLS connection has to complete its handshake.", TLS_OPTION_KINDS, False),
    ListenerOption("psk_support", FLAG, "off",
                   "TLS-PSK (pre-shared keys): refused at start, Python 3.11's ssl module has no PSK.",
                   ("ssl",), False),
    *(ListenerOption(name, kind, default, doc, ("ssl",), False, ignored="only used with psk_support, which "
                     "vmqpy refuses (Python 3.11's ssl module has no TLS-PSK)")
      for name, kind, default, doc in (
          ("psk_identity_hint", STR, "VMQ_PSK", "TLS-PSK identity hint."),
          ("pskfile", PATH, "$(platform_etc_dir)/vmq.psk", "File of the TLS-PSK identities and keys."),
          ("pskfile_separator", STR, ":", "Separator of identity and key in the pskfile."))),
    # Erlang socket and dispatch tuning of VerneMQ's listeners
    *(ListenerOption(name, kind, default, f"VerneMQ's {name}: no effect in vmqpy.", kinds, False,
                     ignored="Erlang socket, process-mailbox and Cowboy dispatch tuning")
      for name, kind, default, kinds in (
          ("buffer_sizes", STR, None, ("tcp", "ssl", "vmq")), ("active_n", Int(minimum=None), None, ("tcp", "ssl")),
          ("high_watermark", INT, "8192", ("vmq",)), ("low_watermark", INT, "4096", ("vmq",)),
          ("high_msgq_watermark", INT, "8192", ("vmq",)), ("low_msgq_watermark", INT, "4096", ("vmq",)),
          ("config_mod", STR, "vmq_http_config", HTTP_KINDS), ("config_fun", STR, "config", HTTP_KINDS))),
)
# vmq_http_v2_api and vmq_web_ui are VerneMQ modules vmqpy does not have: named, they serve nothing
HTTP_MODULES = ("vmq_status_http", "vmq_health_http", "vmq_metrics_http", "vmq_http_mgmt_api", "vmq_http_pub",
                "vmq_http_v2_api", "vmq_web_ui")
LISTENER_OPTIONS += (
    ListenerOption("http_modules", EnumList(HTTP_MODULES), "",
                   "HTTP modules a listener serves (empty: those of http_modules): vmq_status_http (/status), "
                   "vmq_health_http (/health), vmq_metrics_http (/metrics), vmq_http_mgmt_api (/api/v1), "
                   "vmq_http_pub (/restmqtt/api/v1/publish).", HTTP_KINDS, False),
)
LISTENER_OPTION_NAMES = frozenset(option.name for option in LISTENER_OPTIONS)


_LISTENER_USES = {
    "tcp": "MQTT over TCP", "ssl": "MQTT over TLS", "ws": "MQTT over WebSocket",
    "wss": "MQTT over WebSocket with TLS", "http": "HTTP (/health, /metrics, /status, /api/v1)",
    "https": "HTTPS (as http, over TLS: certfile, keyfile, cafile ... as the ssl listeners)",
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
            keys.append(Key(top, opt.type, opt.default, opt.doc, ignored=opt.ignored))
        for kind in opt.kinds:
            kind_key = f"listener.{kind}.{opt.name}"
            keys.append(Key(kind_key, opt.type, None if opt.top else opt.default, opt.doc,
                            parent=top if opt.top else None, ignored=opt.ignored))
            keys.append(Key(f"listener.{kind}.$name.{opt.name}", opt.type, None, opt.doc, parent=kind_key,
                            requires=(f"listener.{kind}.$name",), ignored=opt.ignored))
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
    keys.append(Key("vmq_bcrypt.default_log_rounds", Int(minimum=4, maximum=31), "12",
                    "Cost of the bcrypt salts the Lua bcrypt module makes (bcrypt.gen_salt)."))
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
        ("client_id", STR, "auto", "Client id on the remote broker (auto: <hostname>.<name>)."),
        ("mountpoint", STR, "", "Local mountpoint the bridge publishes into and subscribes on."),
        ("keepalive_interval", INT, "60", "Seconds without traffic before the bridge pings."),
        ("username", STR, None, "Username on the remote broker."),
        ("password", STR, None, "Password on the remote broker."),
        ("restart_timeout", INT, "10", "Seconds to wait before reconnecting (doubled per failed attempt, up to 4x)."),
        ("try_private", FLAG, "on", "Tell the remote broker that this client is a bridge (loop detection)."),
        ("mqtt_version", Enum(("3", "4", "5")), "3",
         "MQTT protocol version towards the remote broker: 3 (3.1), 4 (3.1.1) or 5."),
        ("max_outgoing_buffered_messages", INT, "0",
         "Messages buffered while the remote broker is unreachable (0: none); more are dropped."),
        ("outgoing_batch_size", Int(minimum=1), "100",
         "Messages sent to the remote broker and not yet acknowledged, at most."),
        ("pubrel_queue_ratio", Int(minimum=0, maximum=100), "0",
         "Percent of max_outgoing_buffered_messages kept for QoS 2 messages awaiting PUBCOMP (0: no limit)."),
        ("persistent_queue", FLAG, "off",
         "Keep the outgoing buffer on disk (under queue_dir): it survives restarts and crashes."),
        ("queue_dir", PATH, None,
         "Directory of the persistent outgoing buffer (default: $(platform_data_dir)/vmq_bridge/<name>)."),
        ("segment_size", ByteSize(), "4096",
         "Segment size of VerneMQ's on-disk queue; accepted, unused (vmqpy keeps the buffer in RocksDB)."),
        ("inet_version", Enum(("inet", "inet6")), "inet", "Address family of the remote broker: inet or inet6."),
        ("topic.$id", BridgeTopic(), None,
         "Shared topic: pattern [[[ out | in | both ] qos-level] [retain]] [local-prefix remote-prefix]."),
    )
    tls = (
        ("cafile", PATH, "", "PEM file of the CA certificates that are trusted."),
        ("capath", PATH, "", "Directory of PEM CA certificates that are trusted (c_rehash layout)."),
        ("certfile", PATH, "", "PEM encoded client certificate."),
        ("keyfile", PATH, "", "PEM encoded private key of the client certificate."),
        ("insecure", FLAG, "off", "Skip the remote certificate check (never in production)."),
        ("tls_version", Enum(("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")), "tlsv1.2",
         "TLS protocol version used towards the remote broker (the minimum accepted)."),
        ("identity", STR, "", "TLS-PSK identity (with psk instead of certificates)."),
        ("psk", STR, "", "TLS-PSK shared secret, hexadecimal without 0x."),
        ("depth", Int(minimum=1), "1", "Maximum certificate chain depth (accepted; Python's ssl cannot enforce it)."),
        ("sni", STR, None, "Server Name Indication sent to the remote broker (default: its host name)."),
        ("customize_hostname_check", Enum(("https",)), "https",
         "Host name check of the remote certificate: https (wildcard certificates match)."),
    )
    keys = []
    for proto, settings, over in (("tcp", common, "TCP"), ("ssl", common + tls, "TLS")):
        bridge = f"vmq_bridge.{proto}.$name"
        keys.append(Key(bridge, ADDRESS, None, f"Bridge <name> over {over} to the broker at HOST:PORT."))
        keys += [Key(f"{bridge}.{name}", kind, default, doc, requires=(bridge,))
                 for name, kind, default, doc in settings]
    return keys


AUTH_MODES = Enum(("noauth", "apikey"))
# the HTTP modules that want an API key unless told otherwise (VerneMQ's defaults)
APIKEY_MODULES = ("vmq_http_mgmt_api", "vmq_http_pub", "vmq_http_v2_api")


def _http_pub_keys() -> list[Key]:
    """vmq_http_pub: how a message published over HTTP is authenticated, globally and per listener."""
    settings = (
        ("mqtt_auth.mode", Enum(("on-behalf-of", "predefined")), "on-behalf-of",
         "Whose MQTT credentials an HTTP publish is checked with: the request's (on-behalf-of: client_id, "
         "user, password) or the configured ones (predefined: mqtt_auth.user, .password, .client_id)."),
        ("mqtt_auth.auth_plugin", Enum(("mqtt",)), "mqtt", "Which auth hooks check it: the MQTT ones."),
        ("mqtt_auth.user", STR, None, "Username of predefined mode."),
        ("mqtt_auth.password", STR, None, "Password of predefined mode."),
        ("mqtt_auth.client_id", STR, None, "Client id of predefined mode."),
        ("mountpoint", STR, None, "Mountpoint messages published over HTTP go into."),
    )
    keys = [Key("plugins.vmq_http_pub", FLAG, "off",
                "Publish over HTTP (POST /restmqtt/api/v1/publish on listeners serving vmq_http_pub).")]
    for name, kind, default, doc in settings:
        keys.append(Key(f"vmq_http_pub.{name}", kind, default, doc))
        keys += [Key(f"listener.{http}.$name.http_modules.vmq_http_pub.{name}", kind, None,
                     f"{doc} On listener <name> (default: vmq_http_pub.{name}).",
                     requires=(f"listener.{http}.$name",)) for http in HTTP_KINDS]
    return keys


def _operator_keys() -> list[Key]:
    """vmq_server keys of an operator's runbook (issue 18) and the HTTP modules' authentication."""
    def no_effect(name: str, kind: Type, default: str, doc: str, why: str, **kw) -> Key:
        return Key(name, kind, default, f"{doc} No effect in vmqpy: {why}.", ignored=why, **kw)

    return [
        Key("max_ws_frame_size", Int(infinity=True), "268435456",
            "Largest WebSocket frame (bytes) a client may send; a larger one closes the connection (1009)."),
        Key("systree_mountpoint", STR, "", "Mountpoint the $SYS tree is published into."),
        Key("systree_qos", Int(maximum=2), "0", "QoS of the $SYS messages."),
        Key("systree_retain", FLAG, "off", "Publish the $SYS messages retained."),
        Key("systree_reg_view", Enum(("vmq_reg_trie",)), "vmq_reg_trie",
            "Routing view of the $SYS publishes (vmq_reg_trie, the only one)."),
        no_effect("shared_subscription_timeout_action", Enum(("ignore", "requeue")), "ignore",
            "What to do when handing a shared-subscription message to another node times out.",
            "messages to other nodes go on ordered links that do not time out"),
        Key("disconnect_on_unauthorized_publish_v3", FLAG, "off",
            "Disconnect MQTT 3.1 and 3.1.1 clients that publish where they may not (instead of "
            "acknowledging and dropping the message).", runtime=True),
        Key("subscriber_retain_mode", Enum(("immediate", "syncwait")), "immediate",
            "Deliver retained messages to a new subscriber at once or after the retained store synced; "
            "vmqpy's SUBACK waits for the cluster either way, so both behave the same.", runtime=True),
        Key("expire_retain_cache", INT, "0",
            "Seconds between sweeps that delete expired retained messages (MQTT 5 message expiry) "
            "nobody subscribes to (0: off; a matching subscription deletes them anyway)."),
        no_effect("override_max_online_messages", FLAG, "off",
            "Let a session coming online take all its offline messages even beyond max_online_messages.",
            "offline messages are always all delivered, read from the store in pages",
            runtime=True),
        no_effect("max_drain_time", MS, "500",
            "Milliseconds a migrated queue stays to forward late messages.",
            "the old node forwards until the new one confirms the move"),
        Key("tcp_listen_options", ErlangTerm(),
            "[{nodelay, true}, {linger, {true, 0}}, {send_timeout, 30000}, {send_timeout_close, true}]",
            "Socket options of accepted MQTT connections (gen_tcp's): nodelay, linger, keepalive, recbuf, "
            "sndbuf and tos apply; send_timeout and buffer have no counterpart."),
        Key("crl_refresh_interval", MS, "60000",
            "Milliseconds between reloads of the TLS listeners' crlfile (0: never)."),
        Key("min_apikey_length", INT, "0", "Shortest API key vmq-admin api-key add accepts."),
        Key("max_apikey_expiry_days", Int(minimum=1), None,
            "Longest an API key may be valid, in days (unset: no limit; set: every key needs an expiry)."),
        Key("logging.keepalive_as_warning", FLAG, "on",
            "Log a client disconnected for keep alive expiry as a warning (off: as info)."),
        no_effect("logging.obfuscation_secret", STR, "random",
            "Secret VerneMQ encrypts credentials held in memory with.",
            "passwords are not kept after authentication nor logged"),
        Key("http_modules", EnumList(HTTP_MODULES),
            "vmq_metrics_http,vmq_http_mgmt_api,vmq_status_http,vmq_health_http,vmq_http_v2_api",
            "HTTP modules of the HTTP listeners that set no http_modules of their own."),
        Key("http_module.$name.auth.mode", AUTH_MODES, "noauth",
            "Authentication of HTTP module <name> on every listener: noauth, or apikey (an API key of the "
            "module's scope; vmq_http_mgmt_api, vmq_http_pub and vmq_http_v2_api default to apikey)."),
        *(Key(f"http_module.{module}.auth.mode", AUTH_MODES, "apikey", f"Authentication of {module}.")
          for module in APIKEY_MODULES),
        *(Key(f"listener.{http}.$name.http_module.$module.auth.mode", AUTH_MODES, None,
              "Authentication of HTTP module <module> on listener <name> (default: "
              "http_module.<module>.auth.mode).", requires=(f"listener.{http}.$name",)) for http in HTTP_KINDS),
        Key("plugins.$name.priority", INT, None,
            "Start order of plugin <name> (lower first; plugins with a priority start before the others); "
            "its hooks are called in that order."),
        *_http_pub_keys(),
        # vmq_webhooks calls to https:// endpoints
        Key("vmq_webhooks.cafile", PATH, "", "PEM file of the CAs that HTTPS webhook endpoints are verified "
            "against (empty: the system's)."),
        Key("vmq_webhooks.certfile", PATH, "", "PEM client certificate sent to HTTPS webhook endpoints."),
        Key("vmq_webhooks.keyfile", PATH, "", "PEM private key of vmq_webhooks.certfile."),
        Key("vmq_webhooks.keyfile_password", STR, "", "Password of vmq_webhooks.keyfile."),
        Key("vmq_webhooks.tls_version", Enum(("tlsv1.2", "tlsv1.3")), "tlsv1.2",
            "Lowest TLS version of HTTPS webhook calls."),
        Key("vmq_webhooks.verify_peer", FLAG, "on", "Verify the endpoint's certificate and host name."),
        Key("vmq_webhooks.depth", Int(minimum=0), "100",
            "Longest certificate chain accepted from an endpoint (intermediate CAs)."),
        Key("vmq_webhooks.use_crls", FLAG, "on",
            "Check endpoint certificates against the CRLs found in vmq_webhooks.cafile."),
    ]


# VerneMQ's (Erlang logger's) severities, lowest first; vmqpy.log maps them onto Python's levels
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_LOG_FORMAT = Enum(("text", "json"))


def _log_keys() -> list[Key]:
    """files/vmq.schema's log.* keys (VerneMQ 2.x, Erlang logger), crash and SASL logs aside."""
    keys = [
        Key("log.console", Enum(("console", "file", "both", "off")), "file",
            "Where the console log goes: console (stdout), file, both, or off."),
        Key("log.console.level", Enum(LOG_LEVELS), "info", "Lowest severity the console log records."),
        Key("log.console.file", PATH, "$(platform_log_dir)/console.log", "File of the console log."),
        Key("log.console.console.format", _LOG_FORMAT, "text",
            "Format of the console log on standard output: text or json (one JSON object a line)."),
        Key("log.console.file.format", _LOG_FORMAT, "text", "Format of the console log file: text or json."),
        Key("log.error", FLAG, "on", "Write the error log (errors only) to log.error.file."),
        Key("log.error.file", PATH, "$(platform_log_dir)/error.log", "File of the error log."),
        Key("log.error.file.format", _LOG_FORMAT, "text", "Format of the error log file: text or json."),
        Key("log.template", Enum(("simple", "extended")), "extended",
            "Text log lines: simple (time level: message) or extended (time [level] <pid> logger: message)."),
        Key("log.level", Enum(("all", "debug", "info", "warning", "error")), "all",
            "Lowest severity any log records (all: as each log's own level says)."),
        Key("log.syslog", FLAG, "off", "Also send the log to syslog (the local /dev/log, or log.syslog.remote.host)."),
        Key("log.syslog.level", Enum(("all", "debug", "info", "warning", "error")), "all",
            "Lowest severity sent to syslog (all: as log.console.level)."),
        Key("log.syslog.format", Enum(("rfc3164", "rfc5424")), "rfc3164", "Syslog message format."),
        Key("log.syslog.facility", Enum(SYSLOG_FACILITIES), "daemon", "Syslog facility."),
        Key("log.syslog.app_name", STR, None, "Syslog application name (default: vernemq)."),
        Key("log.syslog.remote.host", STR, None, "Send syslog to this host instead of the local /dev/log."),
        Key("log.syslog.remote.port", Int(maximum=65535), "514", "Port of the remote syslog server."),
        Key("log.syslog.remote.protocol", Enum(("udp", "tcp", "tls")), "udp",
            "Transport to the remote syslog server: udp, tcp, or tls (TCP in TLS, RFC 5425)."),
        Key("log.syslog.remote.tls.cafile", PATH, None,
            "With tls: PEM file of the CAs that verify the syslog server (default: the system's)."),
    ]
    for log in ("console", "error"):
        keys += [
            Key(f"log.{log}.rotation.size", ByteSize(infinity=True), "infinity",
                f"Rotate the {log} log when it reaches this size (infinity: never)."),
            Key(f"log.{log}.rotation.keep", INT, "5",
                f"Rotated {log} logs kept (0: only the current file, emptied when it is full)."),
            Key(f"log.{log}.rotation.compress_on_rotate", FLAG, "off", f"gzip the rotated {log} logs."),
        ]
    return keys


SYSLOG_FACILITIES = (
    "kern", "kernel", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "logaudit", "logalert", "clock", *(f"local{n}" for n in range(8)))
IGNORED_TYPES = {"int": Int(minimum=None), "flag": FLAG, "text": STR, "bytes": ByteSize()}


def _ignored_keys() -> list[Key]:
    return [Key(name, IGNORED_TYPES[kind], default, f"Accepted from VerneMQ, no effect in vmqpy: {why}.",
                ignored=why) for name, kind, default, why in IGNORED]

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
    Key("vmq_generic_msg_store.store_dir", PATH, "$(platform_data_dir)/msgstore",
        "Directory of the offline message store (VerneMQ's name of it)."),
    Key("message_store.dir", PATH, "$(vmq_generic_msg_store.store_dir)",
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
    Key("max_subscriptions_per_client", Int(), "0",
        "Subscriptions a client may hold; a SUBSCRIBE filter beyond it is refused (0x80, v5 0x97 Quota "
        "exceeded), replacing an existing one is allowed (0: no limit).", runtime=True),
    Key("topic_max_depth", Int(), "10",
        "Most levels a topic or filter may have; a PUBLISH, SUBSCRIBE, UNSUBSCRIBE or will with a deeper "
        "one is a malformed packet: the connection is closed (v5: DISCONNECT or CONNACK 0x81 first; 0: no limit)."),
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
        "MQTT 5: most unacknowledged QoS 1 and 2 publishes the broker sends a client; a client's own "
        "Receive Maximum can only lower it.", runtime=True),
    Key("receive_max_broker", Int(minimum=1, maximum=65535), "65535",
        "MQTT 5: most unacknowledged QoS 1 and 2 publishes a client may send the broker, announced as "
        "Receive Maximum in CONNACK; a client sending more is disconnected (0x93).", runtime=True),
    Key("topic_alias_max_client", Int(maximum=65535), "10",
        "MQTT 5 topic aliases a client may use towards the broker, announced in CONNACK (0: none; "
        "VerneMQ's default is 0, mosquitto's 10).", runtime=True),
    Key("topic_alias_max_broker", Int(maximum=65535), "10",
        "MQTT 5 topic aliases the broker uses towards a client that allows them in its CONNECT "
        "(0: none; VerneMQ's default is 0).", runtime=True),
    Key("max_keepalive", Int(maximum=65535), "0",
        "Largest keep alive (seconds) a client may use (0: any). An MQTT 5 client asking more, or "
        "none (0), gets this as Server Keep Alive in CONNACK; an MQTT 3 client is refused "
        "(identifier rejected), as mosquitto does.", runtime=True),
    Key("response_information", STR, "",
        "MQTT 5 response information sent to clients that ask for it (empty: none)."),
    Key("mqtt_connect_timeout", MS, "5000",
        "Milliseconds from accept to a complete CONNECT (TLS handshake and WebSocket upgrade included); "
        "a connection that takes longer is closed (0: no limit).", runtime=True),
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
    Key("prometheus_namespace", STR, "vernemq_",
        "Prefix of every metric name on /metrics (empty: VerneMQ 1.x's bare names).", runtime=True),
    Key("prometheus_client_class", Enum(("off", "client_id", "username")), "off",
        "Also show on /metrics, per client class, connections and queued and dropped messages: the "
        "class is the client id (or username) up to prometheus_client_class_separator (vmqpy's own).",
        runtime=True),
    Key("prometheus_client_class_separator", STR, "-",
        "Where a client id or username ends its class: sensor-0042 is of class sensor.", runtime=True),
    Key("prometheus_client_class_max", Int(minimum=1), "20",
        "At most this many classes on /metrics (the largest); the others together as 'other'.", runtime=True),
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
    *_log_keys(),
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
    *_operator_keys(),
    *_ignored_keys(),
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
