"""The MQTT 5 property table (spec 2.2.2.2).

Each property id maps to its snake_case name (the key used in packet
`properties` dicts), its wire data type and the packet types that may carry it.
Will properties are checked against the pseudo packet type WILL.
"""

from __future__ import annotations

from vmqpy.mqtt.packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
)

# Packet type 0 is reserved on the wire, so it can stand for "the will
# properties inside CONNECT" without clashing with a real type.
WILL = 0

# Wire data types.
BYTE = 1
UINT16 = 2
UINT32 = 3
VARINT = 4
UTF8 = 5
BINARY = 6
UTF8_PAIR = 7

_ACKS = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK})
_MESSAGE = frozenset({PUBLISH, WILL})

# id -> (name, data type, packet types allowed to carry it)
PROPERTIES: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", BYTE, _MESSAGE),
    0x02: ("message_expiry_interval", UINT32, _MESSAGE),
    0x03: ("content_type", UTF8, _MESSAGE),
    0x08: ("response_topic", UTF8, _MESSAGE),
    0x09: ("correlation_data", BINARY, _MESSAGE),
    0x0B: ("subscription_identifier", VARINT, frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", UINT32, frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", UTF8, frozenset({CONNACK})),
    0x13: ("server_keep_alive", UINT16, frozenset({CONNACK})),
    0x15: ("authentication_method", UTF8, frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", BINARY, frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", BYTE, frozenset({CONNECT})),
    0x18: ("will_delay_interval", UINT32, frozenset({WILL})),
    0x19: ("request_response_information", BYTE, frozenset({CONNECT})),
    0x1A: ("response_information", UTF8, frozenset({CONNACK})),
    0x1C: ("server_reference", UTF8, frozenset({CONNACK, DISCONNECT})),
    0x1F: ("reason_string", UTF8, _ACKS | {CONNACK, DISCONNECT, AUTH}),
    0x21: ("receive_maximum", UINT16, frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", UINT16, frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", UINT16, frozenset({PUBLISH})),
    0x24: ("maximum_qos", BYTE, frozenset({CONNACK})),
    0x25: ("retain_available", BYTE, frozenset({CONNACK})),
    0x26: ("user_property", UTF8_PAIR,
           _ACKS | _MESSAGE | {CONNECT, CONNACK, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH}),
    0x27: ("maximum_packet_size", UINT32, frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", BYTE, frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", BYTE, frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", BYTE, frozenset({CONNACK})),
}

# name -> (id, data type, allowed packet types)
BY_NAME: dict[str, tuple[int, int, frozenset[int]]] = {
    name: (pid, dtype, allowed) for pid, (name, dtype, allowed) in PROPERTIES.items()
}

# Byte properties whose only legal values are 0 and 1 (anything else is a
# protocol error per the spec); maximum_qos is 0/1 too since 2 is implied by absence.
BOOLEAN = frozenset({
    "payload_format_indicator", "request_problem_information", "request_response_information",
    "maximum_qos", "retain_available", "wildcard_subscription_available",
    "subscription_identifier_available", "shared_subscription_available",
})

# Properties for which the value 0 is a protocol error.
NONZERO = frozenset({"subscription_identifier", "receive_maximum", "maximum_packet_size"})
