"""Property tests: every packet type of MQTT 3.1, 3.1.1 and 5 round-trips encode -> decode.

Packets are drawn by hypothesis (properties from the property table, each packet type's own
fields), encoded, and decoded in one piece, cut in two at every byte boundary, and one byte at
a time, by the pure-Python decoder loop and by its compiled twin. The examples per test are
few (the profile "ci"); VMQPY_HYPOTHESIS=deep runs many more:

    VMQPY_HYPOTHESIS=deep .venv/bin/pytest -q test/unit/test_codec_properties.py
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmqpy.mqtt import codec
from vmqpy.mqtt.codec import Decoder, encode
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
    Auth,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubOpts,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from vmqpy.mqtt.properties import (
    BINARY,
    BOOLEAN,
    BYTE,
    NONZERO,
    PROPERTIES,
    UINT16,
    UINT32,
    UTF8,
    UTF8_PAIR,
    VARINT,
    WILL,
)

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile(os.environ.get("VMQPY_HYPOTHESIS", "ci"))

LOOPS = {"python": None, "compiled": codec._scan}  # compiled is None when the extension was not built

# UTF-8 strings the spec allows: no surrogates (unencodable anyway), no U+0000.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
topic_name = text.filter(lambda t: t and "+" not in t and "#" not in t)
topic_filter = st.one_of(text.filter(bool), st.sampled_from(["#", "+", "a/+/b", "a/#", "$share/g/t/#"]))
binary = st.binary(max_size=12)
packet_id = st.integers(1, 65535)
reason = st.integers(0, 255)

_VALUES = {
    BYTE: st.integers(0, 255), UINT16: st.integers(0, 65535), UINT32: st.integers(0, 2**32 - 1),
    VARINT: st.integers(1, 2**28 - 1), UTF8: text, BINARY: binary, UTF8_PAIR: st.tuples(text, text),
}


def _value(name: str, dtype: int) -> st.SearchStrategy:
    if name in BOOLEAN:
        return st.integers(0, 1)
    if name in NONZERO:
        return _VALUES[dtype].filter(bool)
    return _VALUES[dtype]


def properties(ptype: int, exclude: frozenset[str] = frozenset()) -> st.SearchStrategy:
    """A property dict (or None) that a `ptype` packet may carry, valid as the decoder checks it."""
    fields = {}
    for name, dtype, allowed in PROPERTIES.values():
        if ptype not in allowed or name in exclude:
            continue
        if name == "user_property":
            fields[name] = st.lists(_value(name, dtype), min_size=1, max_size=3)
        elif name == "subscription_identifier":
            fields[name] = st.lists(_value(name, dtype), min_size=1, max_size=3 if ptype == PUBLISH else 1)
        else:
            fields[name] = _value(name, dtype)

    @st.composite
    def draw(draw):
        chosen = draw(st.sets(st.sampled_from(sorted(fields)), max_size=4)) if fields else set()
        if "authentication_data" in chosen:
            chosen.add("authentication_method")
        props = {name: draw(fields[name]) for name in sorted(chosen)}
        return props or None

    return draw()


def _props(version: int, ptype: int, **kw) -> st.SearchStrategy:
    return properties(ptype, **kw) if version == 5 else st.none()


@st.composite
def wills(draw, version: int) -> Will:
    return Will(draw(topic_name), draw(binary), draw(st.integers(0, 2)), draw(st.booleans()),
                draw(_props(version, WILL)))


@st.composite
def connects(draw, version: int) -> Connect:
    username = draw(st.none() | text)
    # v3 refuses a password without a user name; v5 allows it.
    password = draw(st.none() | binary) if username is not None or version == 5 else None
    return Connect(draw(text), version, "MQIsdp" if version == 3 else "MQTT", draw(st.booleans()),
                   draw(st.integers(0, 65535)), username, password, draw(st.none() | wills(version)),
                   draw(_props(version, CONNECT)), draw(st.booleans()) if version != 5 else False)


@st.composite
def publishes(draw, version: int, server: bool) -> Publish:
    qos = draw(st.integers(0, 2))
    exclude = frozenset({"subscription_identifier"}) if server else frozenset()
    props = draw(_props(version, PUBLISH, exclude=exclude))
    topic = draw(topic_name | st.just("")) if props and "topic_alias" in props else draw(topic_name)
    return Publish(topic, draw(st.binary(max_size=40)), qos, draw(st.booleans()), qos > 0 and draw(st.booleans()),
                   draw(packet_id) if qos else None, props)


_ACK_TYPES = {Puback: PUBACK, Pubrec: PUBREC, Pubrel: PUBREL, Pubcomp: PUBCOMP}


@st.composite
def acks(draw, version: int):
    cls = draw(st.sampled_from(list(_ACK_TYPES)))
    if version != 5:
        return cls(draw(packet_id))
    return cls(draw(packet_id), draw(st.sampled_from([0, 0x10, 0x80, 0x92])), draw(_props(5, _ACK_TYPES[cls])))


@st.composite
def sub_opts(draw, version: int, shared: bool) -> SubOpts:
    if version != 5:
        return SubOpts(draw(st.integers(0, 2)))
    return SubOpts(draw(st.integers(0, 2)), not shared and draw(st.booleans()), draw(st.booleans()),
                   draw(st.integers(0, 2)))


@st.composite
def subscribes(draw, version: int) -> Subscribe:
    filters = draw(st.lists(topic_filter, min_size=1, max_size=4))
    topics = [(f, draw(sub_opts(version, f.startswith("$share/")))) for f in filters]
    return Subscribe(draw(packet_id), topics, draw(_props(version, SUBSCRIBE)))


def unsubscribes(version: int) -> st.SearchStrategy:
    return st.builds(Unsubscribe, packet_id, st.lists(topic_filter, min_size=1, max_size=4),
                     _props(version, UNSUBSCRIBE))


def disconnects(version: int, cls: type, ptype: int) -> st.SearchStrategy:
    if version != 5:
        return st.builds(cls)
    return st.builds(cls, reason, _props(5, ptype))


def client_packets(version: int) -> st.SearchStrategy:
    """Any packet a client sends after CONNECT."""
    kinds = [publishes(version, server=True), acks(version), subscribes(version), unsubscribes(version),
             st.builds(Pingreq), disconnects(version, Disconnect, DISCONNECT)]
    if version == 5:
        kinds.append(disconnects(5, Auth, AUTH))
    return st.one_of(kinds)


def server_packets(version: int) -> st.SearchStrategy:
    """Any packet a server sends."""
    codes = st.lists(reason, min_size=1, max_size=4)
    kinds = [st.builds(Connack, st.booleans(), reason, _props(version, CONNACK)),
             publishes(version, server=False), acks(version),
             st.builds(Suback, packet_id, codes, _props(version, SUBACK)),
             st.builds(Unsuback, packet_id, codes if version == 5 else st.just([]), _props(version, UNSUBACK)),
             st.builds(Pingresp)]
    if version == 5:
        kinds += [disconnects(5, Disconnect, DISCONNECT), disconnects(5, Auth, AUTH)]
    return st.one_of(kinds)


def _decode(pieces: list[bytes], version: int, server: bool, scan) -> list:
    saved = codec._scan
    codec._scan = scan
    try:
        dec = Decoder() if server else Decoder(version, server=False)
        out = []
        for piece in pieces:
            out += dec.feed(piece)
        assert not dec._rest, "bytes left over after the last frame"
        return out
    finally:
        codec._scan = saved


def assert_round_trip(packets: list, version: int, server: bool) -> None:
    """`packets` encoded back to back decode to themselves however the bytes are cut."""
    data = b"".join(encode(p, version) for p in packets)
    for name, scan in LOOPS.items():
        if name == "compiled" and scan is None:
            continue
        assert _decode([data], version, server, scan) == packets, name
        for cut in range(1, len(data)):
            assert _decode([data[:cut], data[cut:]], version, server, scan) == packets, (name, cut)
        assert _decode([data[k:k + 1] for k in range(len(data))], version, server, scan) == packets, name


@pytest.mark.parametrize("version", [3, 4, 5])
@PROFILE
@given(data=st.data())
def test_connect_round_trips(version, data):
    assert_round_trip([data.draw(connects(version))], version, server=True)


@pytest.mark.parametrize("version", [3, 4, 5])
@PROFILE
@given(data=st.data())
def test_client_packets_round_trip(version, data):
    connect = Connect("c", version, "MQIsdp" if version == 3 else "MQTT")
    assert_round_trip([connect, *data.draw(st.lists(client_packets(version), min_size=1, max_size=3))],
                      version, server=True)


@pytest.mark.parametrize("version", [3, 4, 5])
@PROFILE
@given(data=st.data())
def test_server_packets_round_trip(version, data):
    assert_round_trip(data.draw(st.lists(server_packets(version), min_size=1, max_size=3)), version, server=False)


@pytest.mark.parametrize("version", [3, 4, 5])
@pytest.mark.parametrize("kind", ["publish", "ack", "subscribe", "unsubscribe", "ping", "disconnect"])
@PROFILE
@given(data=st.data())
def test_each_client_packet_type_round_trips(version, kind, data):
    """One test per packet type, so a rare type is not left to chance in the mixed lists."""
    strategy = {"publish": publishes(version, server=True), "ack": acks(version), "subscribe": subscribes(version),
                "unsubscribe": unsubscribes(version), "ping": st.builds(Pingreq),
                "disconnect": disconnects(version, Disconnect, DISCONNECT)}[kind]
    assert_round_trip([Connect("c", version, "MQIsdp" if version == 3 else "MQTT"), data.draw(strategy)],
                      version, server=True)


@PROFILE
@given(data=st.data())
def test_auth_round_trips_both_ways(data):
    auth = data.draw(disconnects(5, Auth, AUTH))
    assert_round_trip([Connect("c", 5), auth], 5, server=True)
    assert_round_trip([auth], 5, server=False)
