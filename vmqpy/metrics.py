"""Node counters with VerneMQ's metric names.

Counters are plain ints in one dict: an increment on the hot path is a dict
update, and callers batch (one `inc(name, n)` per decoded batch, not per
message). The same numbers feed $SYS, Graphite and Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable

COUNTERS = (
    "socket_open", "socket_close", "socket_error",
    "mqtt_connect_received", "mqtt_connack_sent",
    "mqtt_connack_accepted_sent", "mqtt_connack_unacceptable_protocol_sent",
    "mqtt_connack_identifier_rejected_sent", "mqtt_connack_server_unavailable_sent",
    "mqtt_connack_bad_credentials_sent", "mqtt_connack_not_authorized_sent",
    "mqtt_publish_received", "mqtt_publish_sent", "mqtt_publish_auth_error",
    "mqtt_puback_received", "mqtt_puback_sent", "mqtt_puback_invalid_error",
    "mqtt_pubrec_received", "mqtt_pubrec_sent", "mqtt_pubrel_received", "mqtt_pubrel_sent",
    "mqtt_pubcomp_received", "mqtt_pubcomp_sent",
    "mqtt_subscribe_received", "mqtt_suback_sent", "mqtt_subscribe_auth_error",
    "mqtt_unsubscribe_received", "mqtt_unsuback_sent",
    "mqtt_pingreq_received", "mqtt_pingresp_sent",
    "mqtt_disconnect_received", "mqtt_disconnect_sent",
    "mqtt_auth_received", "mqtt_auth_sent",
    "mqtt_invalid_msg_size_error", "mqtt_malformed_packet_error", "mqtt_protocol_error",
    "client_keepalive_expired",
    "queue_setup", "queue_teardown", "queue_message_in", "queue_message_out",
    "queue_message_drop", "queue_message_expired", "queue_message_unhandled",
    "queue_initialized_from_storage",
    "router_matches_local", "router_matches_remote",
    "retain_messages_stored",
    "message_store_writes", "message_store_deletes",
)


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
        out: dict[str, float] = dict(self.counters)
        for name, fn in self.gauges.items():
            out[name] = fn()
        return out
