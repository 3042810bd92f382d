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
}


@dataclass(frozen=True)
class Sample:
    kind: str  # "counter" or "gauge"
    name: str
    value: float
    description: str


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def gauge(self, name: str, fn: Callable[[], float]) -> None:
        """Register a gauge whose value is read when metrics are reported."""
        self.gauges[name] = fn

    def snapshot(self) -> dict[str, float]:
        return {s.name: s.value for s in self.samples()}

    def samples(self) -> Iterator[Sample]:
        """Every metric, counters first, each group sorted by name."""
        for name in sorted(self.counters):
            yield Sample("counter", name, self.counters[name], COUNTERS.get(name, name))
        for name in sorted(self.gauges):
            yield Sample("gauge", name, self.gauges[name](), GAUGES.get(name, name))


class HasSamples(Protocol):
    def samples(self) -> Iterator[Sample]: ...


# -- several workers' figures -> the node's (nr_of_workers > 1, docs/workers.md) -----------------------------

# Taken as the largest over the workers instead of summed: time since start, and what every worker
# holds whole (each worker keeps the entire retained trie).
MAX_OF = frozenset({"system_wallclock", "uptime", "retain_messages", "retained"})


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

    def samples(self) -> Iterator[Sample]:
        return iter(self.items)


def sum_samples(per_worker: Iterable[Iterable[tuple[str, str, float]]]) -> Summed:
    """(kind, name, value) triples of every worker -> the node's samples, in `Metrics.samples()` order.
    A metric some workers lack (system_wallclock runs where $SYS does) combines what there is."""
    values: dict[tuple[str, str], list[float]] = {}
    for triples in per_worker:
        for kind, name, value in triples:
            values.setdefault((kind, name), []).append(value)
    order = sorted(values, key=lambda kn: (kn[0] != "counter", kn[1]))
    return Summed(tuple(Sample(kind, name, combine(name, values[kind, name]),
                               (COUNTERS if kind == "counter" else GAUGES).get(name, name))
                        for kind, name in order))


def fmt_value(value: float) -> str:
    """Integers without a fraction, as VerneMQ prints them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def topic_words(name: str) -> list[str]:
    """VerneMQ splits a metric name on `_` for $SYS topics and Graphite paths."""
    return name.split("_")


_LABEL_ESCAPES = str.maketrans({"\\": r"\\", '"': r"\"", "\n": r"\n"})
_HELP_ESCAPES = str.maketrans({"\\": r"\\", "\n": r"\n"})
_NAME_OK = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def prometheus_text(metrics: HasSamples, labels: dict[str, str]) -> str:
    """The Prometheus text exposition format (0.0.4), VerneMQ's names, no `_total` suffix."""
    label_text = ",".join(f'{k}="{v.translate(_LABEL_ESCAPES)}"' for k, v in labels.items())
    suffix = "{" + label_text + "}" if label_text else ""
    lines = []
    for s in metrics.samples():
        if not _NAME_OK.fullmatch(s.name):
            continue
        lines.append(f"# HELP {s.name} {s.description.translate(_HELP_ESCAPES)}")
        lines.append(f"# TYPE {s.name} {s.kind}")
        lines.append(f"{s.name}{suffix} {fmt_value(s.value)}")
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
