"""Node counters and gauges with VerneMQ's metric names and descriptions.

Counters are plain ints in one dict: an increment on the hot path is a dict
update, and callers batch (one `inc(name, n)` per decoded batch, not per
message). Gauges are functions read when metrics are reported. The same
numbers feed `vmq-admin metrics show`, $SYS, Graphite and Prometheus.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import gevent

log = logging.getLogger(__name__)

# name -> description (VerneMQ's wording where VerneMQ has the metric)
COUNTERS: dict[str, str] = {
    "socket_open": "The number of times an MQTT socket has been opened.",
    "socket_close": "The number of times an MQTT socket has been closed.",
    "socket_error": "The total number of socket errors that have occurred.",
    "mqtt_connect_received": "The number of CONNECT packets received.",
    "mqtt_connack_sent": "The number of CONNACK packets sent.",
    "mqtt_connack_accepted_sent": "The number of times a connection has been accepted.",
    "mqtt_connack_unacceptable_protocol_sent":
        "The number of times the broker is not able to support the requested protocol.",
    "mqtt_connack_identifier_rejected_sent":
        "The number of times a client was rejected due to a unacceptable identifier.",
    "mqtt_connack_server_unavailable_sent":
        "The number of times a client was rejected due the the broker being unavailable.",
    "mqtt_connack_bad_credentials_sent": "The number of times a client sent bad credentials.",
    "mqtt_connack_not_authorized_sent":
        "The number of times a client was rejected due to insufficient authorization.",
    "mqtt_publish_received": "The number of PUBLISH packets received.",
    "diversity_db_errors": "vmq_diversity database calls that failed: unreachable, broken or too slow.",
    "diversity_db_outages": "Times a vmq_diversity database went from available to unavailable.",
    "jwt_token_expired": "CONNECTs refused by vmq_jwt because the token had expired (or was not yet valid).",
    "jwt_token_invalid": "CONNECTs refused by vmq_jwt: a forged, malformed or wrong-audience/issuer token.",
    "mqtt_publish_sent": "The number of PUBLISH packets sent.",
    "mqtt_publish_auth_error": "The number of unauthorized publish attempts.",
    "mqtt_puback_received": "The number of PUBACK packets received.",
    "mqtt_puback_sent": "The number of PUBACK packets sent.",
    "mqtt_puback_invalid_error": "The number of unexpected PUBACK messages received.",
    "mqtt_pubrec_received": "The number of PUBREC packets received.",
    "mqtt_pubrec_sent": "The number of PUBREC packets sent.",
    "mqtt_pubrel_received": "The number of PUBREL packets received.",
    "mqtt_pubrel_sent": "The number of PUBREL packets sent.",
    "mqtt_pubcomp_received": "The number of PUBCOMP packets received.",
    "mqtt_pubcomp_sent": "The number of PUBCOMP packets sent.",
    "mqtt_subscribe_received": "The number of SUBSCRIBE packets received.",
    "mqtt_suback_sent": "The number of SUBACK packets sent.",
    "mqtt_subscribe_auth_error": "The number of unauthorized subscription attempts.",
    "mqtt_subscribe_quota_exceeded":
        "The number of SUBSCRIBE filters refused as the client held max_subscriptions_per_client (vmqpy's own).",
    "mqtt_unsubscribe_received": "The number of UNSUBSCRIBE packets received.",
    "mqtt_unsuback_sent": "The number of UNSUBACK packets sent.",
    "mqtt_pingreq_received": "The number of PINGREQ packets received.",
    "mqtt_pingresp_sent": "The number of PINGRESP packets sent.",
    "mqtt_disconnect_received": "The number of DISCONNECT packets received.",
    "mqtt_disconnect_sent": "The number of DISCONNECT packets sent.",
    "mqtt_auth_received": "The number of AUTH packets received.",
    "mqtt_auth_sent": "The number of AUTH packets sent.",
    "mqtt_invalid_msg_size_error": "The number of packages exceeding the maximum allowed size.",
    "mqtt_malformed_packet_error": "The number of malformed packets received.",
    "mqtt_protocol_error": "The number of MQTT protocol violations by clients.",
    "client_keepalive_expired":
        "The number of clients which failed to communicate within the keepalive time period.",
    "client_unconfirmed_publish_disconnect":
        "The number of publishers disconnected unacknowledged as a worker did not confirm storing their publishes.",
    "queue_setup": "The number of times a MQTT queue process has been started.",
    "queue_teardown": "The number of times a MQTT queue process has been terminated.",
    "queue_message_in": "The number of PUBLISH packets received by MQTT queue processes.",
    "queue_message_out": "The number of PUBLISH packets sent from MQTT queue processes.",
    "queue_message_drop": "The number of messages dropped due to full queues.",
    "queue_message_expired": "The number of messages which expired before delivery.",
    "queue_message_unhandled": "The number of unhandled messages when connecting with clean session=true.",
    "queue_message_shed": "The number of QoS 0 messages shed from slow consumers while the node was overloaded.",
    "queue_message_too_large": "The number of messages dropped as larger than the client's Maximum Packet Size.",
    "mqtt_publish_throttled": "The number of times a session paused reading as it published above max_message_rate.",
    "overload_connect_refused": "The number of CONNECTs refused with Server busy while the node was overloaded.",
    "overload_publish_refused": "The number of MQTT 5 QoS 1/2 publishes refused with Quota exceeded while "
                                "the node was overloaded.",
    "queue_initialized_from_storage":
        "The number of times a MQTT queue process has been initialized from offline storage.",
    "router_matches_local": "The number of matched local subscriptions.",
    "router_matches_remote": "The number of matched remote subscriptions.",
    "netsplit_detected": "The number of detected netsplits.",
    "netsplit_resolved": "The number of resolved netsplits.",
    "netsplit_register_refused": "CONNECTs refused while the cluster was split.",
    "netsplit_publish_refused": "PUBLISHes refused while the cluster was split.",
    "netsplit_subscribe_refused": "SUBSCRIBEs refused while the cluster was split.",
    "netsplit_unsubscribe_refused": "UNSUBSCRIBEs refused while the cluster was split.",
    "cluster_bytes_sent": "The number of bytes sent to other cluster nodes.",
    "cluster_bytes_received": "The number of bytes received from other cluster nodes.",
    "cluster_bytes_dropped": "The number of bytes dropped while sending data to other cluster nodes.",
    "cluster_connections_refused":
        "The number of connections to the cluster port refused (wrong cookie, garbage, oversized frame).",
    "retain_messages_stored": "The number of retained messages stored.",
    "message_store_writes": "The number of messages written to the message store.",
    "message_store_deletes": "The number of messages deleted from the message store.",
    # vmq_http_pub (POST /restmqtt/api/v1/publish)
    "http_pub_published": "The number of messages sent through the REST Publish API",
    "http_pub_api_error": "Number of errors reported by the REST Publish API",
    "http_pub_auth_error": "Number of Auth errors reported by the REST Publish API",
    "socket_close_timeout": "The number of times VerneMQ closed an MQTT socket due to no CONNECT frame "
                            "has been received on time.",
    "mqtt_pubrec_invalid_error": "The number of unexpected PUBREC messages received.",
    "mqtt_pubcomp_invalid_error": "The number of unexpected PUBCOMP messages received.",
    "mqtt_publish_error": "The number of times a PUBLISH operation failed due to a netsplit.",
    "mqtt_subscribe_error": "The number of times a SUBSCRIBE operation failed due to a netsplit.",
    "mqtt_unsubscribe_error": "The number of times an UNSUBSCRIBE operation failed due to a netsplit.",
    "client_expired": "Not in use (deprecated)",
    "bytes_received": "The total number of bytes received.",
    "bytes_sent": "The total number of bytes sent.",
}

GAUGES: dict[str, str] = {
    "router_subscriptions": "The number of subscriptions in the routing table.",
    "retain_messages": "The number of currently stored retained messages.",
    "active_mqtt_connections": "The number of active MQTT connections.",
    "queue_processes": "The number of MQTT queue processes.",
    "system_wallclock": "The number of milli-seconds passed since the node was started.",
    "cluster_link_queue": "Records waiting to be sent to other cluster nodes and workers.",
    "metadata_objects": "Live objects in this process's replica of the cluster metadata.",
    "metadata_tombstones": "Deleted cluster metadata objects waiting until every member has seen the delete.",
    "active_mqttws_connections": "The number of active MQTT over websocket connections.",
    "total_active_connections": "The total number of active MQTT and MQTT over websocket connections.",
    # the process's figures under VerneMQ's names for the Erlang VM's (vmqpy.process_stats)
    "system_context_switches": "The total number of context switches.",
    "system_gc_count": "The number of garbage collections performed.",
    "system_words_reclaimed_by_gc": "The number of objects reclaimed by the garbage collector.",
    "system_runtime": "The sum of the runtime for all threads in the Erlang runtime system.",
    "system_run_queue": "The total number of processes and ports ready to run on all run-queues.",
    "system_utilization": "The average system (scheduler) utilization (percentage).",
    "vm_memory_total": "The total amount of memory allocated.",
    # with prometheus_client_class (vmqpy.client_classes), one series per client class
    "client_class_connections": "Connected clients of the class.",
    "client_class_queued_messages": "Messages waiting in the queues of the class's clients.",
    "client_class_dropped_messages": "Messages the queues of the class's clients dropped.",
}
# process figures that only grow: Prometheus types them counter, as VerneMQ does
COUNTING_GAUGES = frozenset({"system_context_switches", "system_gc_count", "system_words_reclaimed_by_gc",
                             "system_runtime", "system_wallclock"})


# The counters VerneMQ labels by mqtt_version (vmq_metrics.erl): "4" for MQTT 3.1 and 3.1.1, "5".
BY_VERSION = frozenset({
    "mqtt_connect_received", "mqtt_publish_received", "mqtt_puback_received", "mqtt_pubrec_received",
    "mqtt_pubrel_received", "mqtt_pubcomp_received", "mqtt_subscribe_received", "mqtt_unsubscribe_received",
    "mqtt_pingreq_received", "mqtt_disconnect_received", "mqtt_connack_accepted_sent",
    "mqtt_connack_unacceptable_protocol_sent", "mqtt_connack_identifier_rejected_sent",
    "mqtt_connack_server_unavailable_sent", "mqtt_connack_bad_credentials_sent",
    "mqtt_connack_not_authorized_sent", "mqtt_publish_sent", "mqtt_puback_sent", "mqtt_pubrec_sent",
    "mqtt_pubrel_sent", "mqtt_pubcomp_sent", "mqtt_suback_sent", "mqtt_unsuback_sent", "mqtt_pingresp_sent",
    "mqtt_publish_auth_error", "mqtt_subscribe_auth_error", "mqtt_invalid_msg_size_error",
    "mqtt_puback_invalid_error", "mqtt_pubrec_invalid_error", "mqtt_pubcomp_invalid_error",
    "mqtt_publish_error", "mqtt_subscribe_error", "mqtt_unsubscribe_error", "client_keepalive_expired",
    "mqtt_disconnect_sent", "mqtt_connack_sent", "mqtt_auth_sent", "mqtt_auth_received",
})
VERSION_LABEL = "mqtt_version"
# Counters VerneMQ also labels by the packet's code: MQTT 5 reason_code, and the v3 CONNACK's return_code
# (vernemq_dev.hrl's names). Counted in Metrics.codes by Metrics.count_code.
BY_CODE = ("mqtt_connack_sent", "mqtt_disconnect_sent", "mqtt_disconnect_received", "mqtt_auth_sent",
           "mqtt_auth_received")
REASON_NAMES = {
    0x00: "success", 0x04: "disconnect_with_will_msg", 0x10: "no_matching_subscribers",
    0x18: "continue_authentication", 0x19: "reauthenticate", 0x80: "unspecified_error",
    0x81: "malformed_packet", 0x82: "protocol_error", 0x83: "impl_specific_error",
    0x84: "unsupported_protocol_version", 0x85: "client_identifier_not_valid", 0x86: "bad_username_or_password",
    0x87: "not_authorized", 0x88: "server_unavailable", 0x89: "server_busy", 0x8A: "banned",
    0x8B: "server_shutting_down", 0x8C: "bad_authentication_method", 0x8D: "keep_alive_timeout",
    0x8E: "session_taken_over", 0x8F: "topic_filter_invalid", 0x90: "topic_name_invalid",
    0x91: "packet_id_in_use", 0x92: "packet_id_not_found", 0x93: "receive_max_exceeded",
    0x94: "topic_alias_invalid", 0x95: "packet_too_large", 0x96: "message_rate_too_high", 0x97: "quota_exceeded",
    0x98: "administrative_action", 0x99: "payload_format_invalid", 0x9A: "retain_not_supported",
    0x9B: "qos_not_supported", 0x9C: "use_another_server", 0x9D: "server_moved",
    0x9E: "shared_subs_not_supported", 0x9F: "connection_rate_exceeded", 0xA0: "max_connect_time",
    0xA1: "subscription_ids_not_supported", 0xA2: "wildcard_subs_not_supported",
}
V3_RETURN_NAMES = {0: "success", 1: "unsupported_protocol_version", 2: "client_identifier_not_valid",
                   3: "server_unavailable", 4: "bad_username_or_password", 5: "not_authorized"}


def describe(name: str, description: str, gauge: bool = False) -> None:
    """Give a metric a plugin adds (vmq_bridge's per-bridge counters) its description."""
    (GAUGES if gauge else COUNTERS).setdefault(name, description)


@dataclass(frozen=True)
class Sample:
    kind: str  # "counter" or "gauge"
    name: str
    value: float
    description: str
    labels: tuple[tuple[str, str], ...] = ()


class Metrics:
    def __init__(self) -> None:
        # A session counts in the dict of its protocol (Session.counters): MQTT 5 sessions in counters5,
        # everything else here. A counter's value is the sum; Prometheus shows the two as mqtt_version.
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.counters5: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, Callable[[], float]] = {}
        self.live: dict[str, Callable[[], int]] = {}
        self.labelled: Callable[[], dict[str, list]] | None = None  # figures with labels (client classes)
        # (name, version, label): count; the success series are there from the start, so every
        # family is on /metrics before its first packet (VerneMQ lists all its codes at 0)
        self.codes: dict[tuple[str, str, tuple[str, str]], int] = {
            ("mqtt_connack_sent", "4", ("return_code", "success")): 0,
            **{(name, "5", ("reason_code", "normal_disconnect" if "disconnect" in name else "success")): 0
               for name in BY_CODE}}

    def count_code(self, name: str, proto_level: int, code: int) -> None:
        """One more `name` (one of BY_CODE) packet with reason / return code `code`: VerneMQ's
        reason_code (MQTT 5) and return_code (v3 CONNACK) series. The counter itself counts apart."""
        if proto_level == 5:
            label = ("reason_code", "normal_disconnect" if code == 0 and "disconnect" in name
                     else REASON_NAMES.get(code, f"0x{code:02x}"))
        elif name == "mqtt_connack_sent":
            label = ("return_code", V3_RETURN_NAMES.get(code, str(code)))
        else:
            return  # VerneMQ labels a v3 DISCONNECT by mqtt_version only
        key = (name, "5" if proto_level == 5 else "4", label)
        self.codes[key] = self.codes.get(key, 0) + 1

    def for_level(self, proto_level: int) -> dict[str, int]:
        """The counters dict a session of MQTT protocol level `proto_level` counts in."""
        return self.counters5 if proto_level == 5 else self.counters

    def inc(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def gauge(self, name: str, fn: Callable[[], float]) -> None:
        """Register a gauge whose value is read when metrics are reported."""
        self.gauges[name] = fn

    def counter_live(self, name: str, fn: Callable[[], int]) -> None:
        """Add what `fn` returns to counter `name` when reported: counts the open connections still hold
        (their bytes), added to the counter as each one closes."""
        self.live[name] = fn

    def snapshot(self) -> dict[str, float]:
        return {s.name: s.value for s in self.samples()}

    def samples(self, labelled: bool = False) -> Iterator[Sample]:
        """Every metric, counters first, each group sorted by name; `labelled`: the counters VerneMQ
        labels by mqtt_version as one sample per version, as its Prometheus output has them."""
        v3, v5 = self.counters, self.counters5
        for name in sorted(v3):
            live = self.live.get(name)
            v5_count = v5.get(name, 0)  # a plugin's own counters (vmq_bridge's) count in v3's dict only
            value = v3[name] + v5_count + (live() if live is not None else 0)
            description = COUNTERS.get(name, name)
            if labelled and name in BY_CODE:
                yield from self._coded(name, v3[name], description)
            elif labelled and name in BY_VERSION:
                yield Sample("counter", name, v3[name], description, ((VERSION_LABEL, "4"),))
                yield Sample("counter", name, v5_count, description, ((VERSION_LABEL, "5"),))
            else:
                yield Sample("counter", name, value, description)
        for name in sorted(self.gauges):
            kind = "counter" if name in COUNTING_GAUGES else "gauge"
            yield Sample(kind, name, self.gauges[name](), GAUGES.get(name, name))
        if labelled and self.labelled is not None:
            for name, values in self.labelled().items():
                for labels, value in values:
                    yield Sample("gauge", name, value, GAUGES.get(name, name), labels)


    def _coded(self, name: str, v3_total: int, description: str) -> Iterator[Sample]:
        """`name` per (mqtt_version, code) as VerneMQ has it; a v3 DISCONNECT or AUTH by version only."""
        coded = sorted((key, n) for key, n in self.codes.items() if key[0] == name)
        if name != "mqtt_connack_sent":
            yield Sample("counter", name, v3_total, description, ((VERSION_LABEL, "4"),))
        for (_, version, label), n in coded:
            yield Sample("counter", name, n, description, ((VERSION_LABEL, version), label))


class HasSamples(Protocol):
    def samples(self, labelled: bool = False) -> Iterator[Sample]: ...


# -- several workers' figures -> the node's (nr_of_workers > 1, docs/workers.md) -----------------------------

# Taken as the largest over the workers instead of summed: time since start, and what every worker
# holds whole (each worker keeps the entire retained trie).
MAX_OF = frozenset({"system_wallclock", "uptime", "retain_messages", "retained", "netsplits"})


def combine(name: str, values: list[Any]) -> Any:
    """The node's value of `name` from each worker's: numbers summed (largest for MAX_OF),
    anything else kept when every worker agrees, else the distinct values joined."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return max(values) if name in MAX_OF else sum(values)
    distinct = sorted({str(v) for v in values})
    return values[0] if len(distinct) == 1 else "/".join(distinct)


@dataclass(frozen=True)
class Summed:
    """Metrics summed over workers: `samples()` as `Metrics.samples()` gives them."""

    items: tuple[Sample, ...]

    def samples(self, labelled: bool = False) -> Iterator[Sample]:
        return iter(self.items)  # labelled or not as the workers' samples it was summed from


def sum_samples(per_worker: Iterable[Iterable[tuple]]) -> Summed:
    """(kind, name, value[, labels]) of every worker -> the node's samples, in `Metrics.samples()` order.
    A metric some workers lack (system_wallclock runs where $SYS does) combines what there is."""
    values: dict[tuple, list[float]] = {}
    for samples in per_worker:
        for kind, name, value, *labels in samples:
            values.setdefault((kind, name, tuple(map(tuple, labels[0])) if labels else ()), []).append(value)
    order = sorted(values, key=lambda knl: (knl[0] != "counter", knl[1], knl[2]))
    return Summed(tuple(Sample(kind, name, combine(name, values[kind, name, labels]),
                               COUNTERS.get(name) or GAUGES.get(name, name), labels)
                        for kind, name, labels in order))


def fmt_value(value: float) -> str:
    """Integers without a fraction, as VerneMQ prints them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def topic_words(name: str) -> list[str]:
    """VerneMQ splits a metric name on `_` for $SYS topics and Graphite paths."""
    return name.split("_")


_LABEL_ESCAPES = str.maketrans({"\\": r"\\", '"': r"\"", "\n": r"\n"})
_HELP_ESCAPES = str.maketrans({"\\": r"\\", "\n": r"\n"})
_NAME_OK = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def prometheus_text(metrics: HasSamples, labels: dict[str, str], namespace: str = "") -> str:
    """The Prometheus text exposition format (0.0.4): VerneMQ's names after `namespace`
    (prometheus_namespace, vernemq_ by default, as vmq_metrics_http), no `_total` suffix, VerneMQ's
    mqtt_version label where it has one; HELP and TYPE once a name."""
    lines = []
    described = set()
    for s in metrics.samples(labelled=True):
        name = namespace + s.name
        if not _NAME_OK.fullmatch(name):
            continue
        if name not in described:
            described.add(name)
            lines.append(f"# HELP {name} {s.description.translate(_HELP_ESCAPES)}")
            lines.append(f"# TYPE {name} {s.kind}")
        label_text = ",".join(f'{k}="{v.translate(_LABEL_ESCAPES)}"' for k, v in (*labels.items(), *s.labels))
        lines.append(f"{name}{{{label_text}}} {fmt_value(s.value)}" if label_text else f"{name} {fmt_value(s.value)}")
    return "\n".join(lines) + "\n"


class PeriodicReporter:
    """A greenlet calling `report()` every `interval()` seconds; `interval()` None pauses it.

    The interval is read again at least every second, so `vmq-admin set` of
    an interval or an enabled flag takes effect without a restart.
    """

    def __init__(self) -> None:
        self._greenlet: gevent.Greenlet | None = None

    def interval(self) -> float | None:
        raise NotImplementedError

    def report(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            interval = self.interval()
            now = time.monotonic()
            if interval is None:
                last = now
                gevent.sleep(1.0)
            elif now - last >= interval:
                last = now
                try:
                    self.report()
                except Exception:  # a reporting bug must not end the reports
                    log.exception("%s failed", type(self).__name__)
            else:
                gevent.sleep(min(interval - (now - last), 1.0))
