"""`vmq_bridge.tcp|ssl.NAME...` keys -> one typed BridgeSettings per bridge.

Names and defaults are VerneMQ's vmq_bridge.schema (declared in vmqpy/config_schema.py, which
also parses each `topic.N` line); the node's config supplies the defaults of keys not set.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from vmqpy.config_types import BridgeTopicSpec
from vmqpy.mqtt.topic import valid_filter

_COMMON = ("cleansession", "client_id", "mountpoint", "keepalive_interval", "username", "password",
           "restart_timeout", "try_private", "mqtt_version", "max_outgoing_buffered_messages",
           "outgoing_batch_size", "pubrel_queue_ratio", "persistent_queue", "queue_dir", "segment_size",
           "inet_version")
_TLS = ("cafile", "capath", "certfile", "keyfile", "insecure", "tls_version", "identity", "psk", "depth",
        "sni", "customize_hostname_check")


@dataclass
class BridgeSettings:
    name: str
    transport: str  # tcp or ssl
    host: str
    port: int
    opts: dict[str, Any]  # every option of _COMMON (and _TLS for ssl), defaults filled in
    topics: list[BridgeTopicSpec] = field(default_factory=list)
    topic_keys: list[str] = field(default_factory=list)  # the config key of each topic

    @property
    def version(self) -> int:
        return int(self.opts["mqtt_version"])

    @property
    def client_id(self) -> str:
        cid = self.opts["client_id"]
        return f"{socket.gethostname()}.{self.name}" if cid == "auto" else cid

    def out_topics(self) -> list[BridgeTopicSpec]:
        return [t for t in self.topics if t.direction in ("out", "both")]

    def in_topics(self) -> list[BridgeTopicSpec]:
        return [t for t in self.topics if t.direction in ("in", "both")]


class BridgeConfigError(ValueError):
    """A bridge that cannot work as configured; `key` is the line to point at."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


def configured_bridges(config: Any, settings: dict[str, Any]) -> list[BridgeSettings]:
    """Every bridge the `vmq_bridge.*` settings define, sorted by name. Raises BridgeConfigError
    for a bridge that cannot work: no topic, a topic that is not a valid filter, a persistent
    queue shared with another bridge, or psk without identity."""
    bridges = []
    for key in sorted(settings):
        transport, _, name = key.partition(".")
        if transport not in ("tcp", "ssl") or not name or "." in name:
            continue
        prefix = f"vmq_bridge.{key}"
        host, port = settings[key]
        names = _COMMON + (_TLS if transport == "ssl" else ())
        opts = {opt: config.get(f"{prefix}.{opt}") for opt in names}
        if not opts["queue_dir"]:
            opts["queue_dir"] = os.path.join(config["platform_data_dir"], "vmq_bridge", name)
        topic_keys = sorted((k for k in settings if k.startswith(f"{key}.topic.")), key=_topic_order)
        bridge = BridgeSettings(name, transport, host, port, opts, [settings[k] for k in topic_keys],
                                [f"vmq_bridge.{k}" for k in topic_keys])
        _check(prefix, bridge)
        bridges.append(bridge)
    dirs = [b.opts["queue_dir"] for b in bridges if b.opts["persistent_queue"]]
    for b in bridges:
        if b.opts["persistent_queue"] and dirs.count(b.opts["queue_dir"]) > 1:
            raise BridgeConfigError(f"vmq_bridge.{b.transport}.{b.name}.queue_dir",
                                    f"{b.opts['queue_dir']} is the queue_dir of another bridge too")
    return bridges


def _topic_order(key: str) -> tuple:
    last = key.rpartition(".")[2]
    return (0, int(last), key) if last.isdigit() else (1, 0, key)


def _check(prefix: str, bridge: BridgeSettings) -> None:
    if not bridge.topics:
        raise BridgeConfigError(prefix, f"no {prefix}.topic.N is set; the bridge would carry nothing")
    for n, spec in enumerate(bridge.topics):
        for pfx in (spec.local_prefix, spec.remote_prefix):
            filt = join(pfx, spec.pattern)
            if not valid_filter(filt):
                raise BridgeConfigError(bridge.topic_keys[n], f"{filt!r} is not a valid topic filter")
    if bridge.transport == "ssl" and bool(bridge.opts["psk"]) != bool(bridge.opts["identity"]):
        raise BridgeConfigError(f"{prefix}.psk" if bridge.opts["psk"] else f"{prefix}.identity",
                                "psk and identity go together")
    if bridge.transport == "ssl" and bridge.opts["psk"] and not hasattr(ssl.SSLContext, "set_psk_client_callback"):
        raise BridgeConfigError(f"{prefix}.psk", "TLS-PSK needs Python 3.13 or later (ssl's PSK callbacks)")


def join(prefix: str, topic: str) -> str:
    """`prefix` in front of `topic` as topic levels: `remote` and `remote/` both give `remote/TOPIC`."""
    if not prefix:
        return topic
    return prefix + topic if prefix.endswith("/") else f"{prefix}/{topic}"


def swap(old: str, new: str, topic: str) -> str:
    """`topic` with the prefix `old` (which it starts with) replaced by `new`."""
    if old:
        cut = len(old) if old.endswith("/") else len(old) + 1
        topic = topic[cut:]
    return join(new, topic)
