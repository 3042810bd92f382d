"""One class per MQTT control packet, shared by v3 (3.1, 3.1.1) and v5.

Properties are a dict keyed by the property's snake_case name (see
properties.py) or None when the packet carries none; 'user_property' is a list
of (key, value) tuples in wire order and 'subscription_identifier' a list of
ints. v3 packets simply leave properties None and reason codes 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Control packet types (the high nibble of the first byte).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

# Protocol levels as carried in CONNECT.
MQTT31 = 3
MQTT311 = 4
MQTT5 = 5


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict | None = None


@dataclass(slots=True)
class Connect:
    client_id: str
    proto_level: int = MQTT311
    proto_name: str = "MQTT"
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict | None = None
    bridge: bool = False  # protocol level had bit 7 set (mosquitto's try_private bridges)
    type = CONNECT


@dataclass(slots=True)
class Connack:
    session_present: bool = False
    reason_code: int = 0  # v3: the CONNACK return code (0..5)
    properties: dict | None = None
    type = CONNACK


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: dict | None = None
    # The frame as received, set by the decoder for a v3 QoS 0 PUBLISH without retain: the exact
    # bytes a v3 QoS 0 subscriber gets, so the broker can forward them instead of re-encoding.
    frame: bytes | None = field(default=None, compare=False, repr=False)
    type = PUBLISH


@dataclass(slots=True)
class Puback:
    packet_id: int
    reason_code: int = 0
    properties: dict | None = None
    type = PUBACK


@dataclass(slots=True)
class Pubrec:
    packet_id: int
    reason_code: int = 0
    properties: dict | None = None
    type = PUBREC


@dataclass(slots=True)
class Pubrel:
    packet_id: int
    reason_code: int = 0
    properties: dict | None = None
    type = PUBREL


@dataclass(slots=True)
class Pubcomp:
    packet_id: int
    reason_code: int = 0
    properties: dict | None = None
    type = PUBCOMP


@dataclass(slots=True)
class SubOpts:
    """Subscription options of one filter (v3 uses only qos)."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    topics: list[tuple[str, SubOpts]] = field(default_factory=list)
    properties: dict | None = None
    type = SUBSCRIBE


@dataclass(slots=True)
class Suback:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: dict | None = None
    type = SUBACK


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topics: list[str] = field(default_factory=list)
    properties: dict | None = None
    type = UNSUBSCRIBE


@dataclass(slots=True)
class Unsuback:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)  # empty for v3
    properties: dict | None = None
    type = UNSUBACK


@dataclass(slots=True)
class Pingreq:
    type = PINGREQ


@dataclass(slots=True)
class Pingresp:
    type = PINGRESP


@dataclass(slots=True)
class Disconnect:
    reason_code: int = 0
    properties: dict | None = None
    type = DISCONNECT


@dataclass(slots=True)
class Auth:
    reason_code: int = 0
    properties: dict | None = None
    type = AUTH


Packet = (
    Connect | Connack | Publish | Puback | Pubrec | Pubrel | Pubcomp | Subscribe | Suback
    | Unsubscribe | Unsuback | Pingreq | Pingresp | Disconnect | Auth
)
