"""MQTT 5 messages: expiry, request/response properties, topic aliases, flow control, packet sizes."""

from __future__ import annotations

import time

import pytest
from clients import CONNECT_PROPS, PUBLISH_PROPS, V5, Paho, Raw, props

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


def raw_sub(port: int, cid: str, filt: str, qos: int = 1, clean: bool = True, **connect_props) -> Raw:
    raw = Raw(port, 5)
    connect_props.setdefault("session_expiry_interval", 0 if clean else 3600)
    assert raw.connect(cid, clean=clean, properties=connect_props).reason_code == 0
    raw.send(P.Subscribe(1, [(filt, P.SubOpts(qos))]))
    assert isinstance(raw.recv(), P.Suback)
    return raw


def publisher(port: int, cid: str) -> Paho:
    pub = Paho(port, cid + "-pub", V5)
    pub.connect()
    return pub


# -- Message Expiry Interval -------------------------------------------------------------
def test_expired_messages_are_not_delivered_to_an_offline_session(broker, cid):
    raw_sub(broker.port, cid, "exp/off", clean=False).close()
    pub = publisher(broker.port, cid)
    pub.publish("exp/off", "short", 1, properties=props(PUBLISH_PROPS, MessageExpiryInterval=1))
    pub.publish("exp/off", "long", 1, properties=props(PUBLISH_PROPS, MessageExpiryInterval=600))
    pub.publish("exp/off", "forever", 1)
    time.sleep(1.5)  # let the short one expire
    back = Raw(broker.port, 5)
    assert back.connect(cid, clean=False, properties={"session_expiry_interval": 3600}).session_present
    got = [back.recv(), back.recv()]
    assert [p.payload for p in got] == [b"long", b"forever"]
    assert 590 <= got[0].properties["message_expiry_interval"] < 600  # the remaining interval
    assert "message_expiry_interval" not in (got[1].properties or {})
    with pytest.raises(TimeoutError):
        back.recv(timeout=0.5)


def test_expired_messages_are_not_delivered_to_an_online_session(broker, cid):
    raw = raw_sub(broker.port, cid, "exp/on", receive_maximum=1)
    pub = publisher(broker.port, cid)
    pub.publish("exp/on", "first", 1)
    pub.publish("exp/on", "expiring", 1, properties=props(PUBLISH_PROPS, MessageExpiryInterval=1))
    first = raw.recv()
    assert first.payload == b"first"
    time.sleep(1.5)  # the second waits behind the receive maximum until it expires
    pub.publish("exp/on", "after", 1)
    raw.send(P.Puback(first.packet_id))
    assert raw.recv().payload == b"after"


# -- request/response and passthrough properties --------------------------------------------
def test_request_response_and_content_properties_pass_through(broker, cid):
    sub = Paho(broker.port, cid + "s", V5)
    sub.connect()
    sub.subscribe("rr/req", 1)
    pub = publisher(broker.port, cid)
    users = [("z", "1"), ("a", "2"), ("z", "3")]
    pub.publish("rr/req", "q", 1, properties=props(
        PUBLISH_PROPS, ResponseTopic="rr/resp", CorrelationData=b"\x00id", PayloadFormatIndicator=1,
        ContentType="application/json", UserProperty=users))
    p = sub.expect(1)[0].properties
    assert (p.ResponseTopic, p.CorrelationData, p.PayloadFormatIndicator, p.ContentType) == (
        "rr/resp", b"\x00id", 1, "application/json")
    assert p.UserProperty == users


def test_response_information_only_when_requested(make_broker, cid):
    node = make_broker({"response_information": "replies/node1"})
    c = Paho(node.port, cid, V5)
    _, _, p = c.connect(props(CONNECT_PROPS, RequestResponseInformation=1))
    assert p.ResponseInformation == "replies/node1"
    c2 = Paho(node.port, cid + "2", V5)
    _, _, p2 = c2.connect()
    assert not hasattr(p2, "ResponseInformation")


# -- topic aliases ----------------------------------------------------------------------------
def test_inbound_topic_alias(make_broker, cid):
    node = make_broker({"topic_alias_max_client": "2"})
    sub = Paho(node.port, cid + "s", V5)
    sub.connect()
    sub.subscribe("alias/in/#", 0)
    raw = Raw(node.port, 5)
    assert raw.connect(cid).properties["topic_alias_maximum"] == 2
    raw.send(P.Publish("alias/in/long", b"1", properties={"topic_alias": 1}))
    raw.send(P.Publish("", b"2", properties={"topic_alias": 1}))
    assert [(m.topic, m.payload) for m in sub.expect(2)] == [("alias/in/long", b"1"), ("alias/in/long", b"2")]
    raw.send(P.Publish("alias/in/x", b"3", properties={"topic_alias": 3}))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.TOPIC_ALIAS_INVALID


def test_inbound_and_outbound_topic_aliases_work_by_default(broker, cid):
    raw = raw_sub(broker.port, cid, "alias/default/#", qos=0, topic_alias_maximum=10)
    pub = Raw(broker.port, 5)
    pub.connect(cid + "-pub")
    pub.send(P.Publish("alias/default/a", b"1", properties={"topic_alias": 10}))
    pub.send(P.Publish("", b"2", properties={"topic_alias": 10}))
    got = [raw.recv(), raw.recv()]
    assert [(p.topic, p.payload, p.properties["topic_alias"]) for p in got] == [
        ("alias/default/a", b"1", 1), ("", b"2", 1)]


def test_outbound_topic_aliases(make_broker, cid):
    node = make_broker({"topic_alias_max_broker": "1"})
    raw = raw_sub(node.port, cid, "alias/out/#", qos=0, topic_alias_maximum=5)
    pub = publisher(node.port, cid)
    for topic in ("alias/out/a", "alias/out/a", "alias/out/b"):
        pub.publish(topic, "x", 1)
    got = [raw.recv() for _ in range(3)]
    assert (got[0].topic, got[0].properties["topic_alias"]) == ("alias/out/a", 1)
    assert (got[1].topic, got[1].properties["topic_alias"]) == ("", 1)
    assert got[2].topic == "alias/out/b" and "topic_alias" not in (got[2].properties or {})  # all used


def test_no_outbound_aliases_for_a_client_that_allows_none(make_broker, cid):
    node = make_broker({"topic_alias_max_broker": "5"})
    raw = raw_sub(node.port, cid, "alias/none", qos=0)
    pub = publisher(node.port, cid)
    pub.publish("alias/none", "x", 1)
    pub.publish("alias/none", "y", 1)
    assert [(p.topic, p.properties) for p in (raw.recv(), raw.recv())] == [("alias/none", None)] * 2


# -- flow control ----------------------------------------------------------------------------------
def two_in_flight(port: int, cid: str, topic: str, receive_maximum: int) -> None:
    """Three QoS 1 messages for a subscriber with room for two: the third waits for a PUBACK."""
    raw = raw_sub(port, cid, topic, receive_maximum=receive_maximum)
    pub = publisher(port, cid)
    for i in range(3):
        pub.publish(topic, str(i), 1)
    first = [raw.recv(), raw.recv()]
    with pytest.raises(TimeoutError):
        raw.recv(timeout=0.5)
    raw.send(P.Puback(first[0].packet_id))
    assert raw.recv().payload == b"2"


def test_broker_respects_the_clients_receive_maximum(broker, cid):
    two_in_flight(broker.port, cid, "flow/rm", receive_maximum=2)


def test_receive_max_client_caps_the_clients_receive_maximum(make_broker, cid):
    two_in_flight(make_broker({"receive_max_client": "2"}).port, cid, "flow/cap", receive_maximum=1000)


def test_connack_announces_the_brokers_receive_maximum_and_topic_aliases_by_default(broker, cid):
    ack = Raw(broker.port, 5).connect(cid)
    assert (ack.properties["receive_maximum"], ack.properties["topic_alias_maximum"]) == (65535, 10)


def test_a_flood_beyond_the_receive_maximum_is_disconnected_at_the_first_one_too_many(make_broker, cid):
    """65,536 QoS 2 publishes written without reading a PUBREC: the broker handles the first 100,
    disconnects with 0x93 at the 101st and reads no further."""
    node = make_broker({"receive_max_broker": "100"})
    raw = Raw(node.port, 5)
    assert raw.connect(cid).properties["receive_maximum"] == 100
    flood = b"".join(encode(P.Publish("flow/flood", b"x", 2, packet_id=i % 65535 + 1), 5) for i in range(65536))
    try:
        raw.sock.sendall(flood)
    except OSError:
        pass  # closed while writing: what follows says why
    assert raw.closed_by_broker()
    assert [type(p) for p in raw.inbox] == [P.Pubrec] * 100 + [P.Disconnect]
    assert raw.inbox[-1].reason_code == R.RECEIVE_MAXIMUM_EXCEEDED


def test_client_exceeding_the_brokers_receive_maximum_is_disconnected(make_broker, cid):
    node = make_broker({"receive_max_broker": "2"})
    raw = Raw(node.port, 5)
    assert raw.connect(cid).properties["receive_maximum"] == 2
    for pid in (1, 2, 3):  # QoS 2 without PUBREL stays unacknowledged
        raw.send(P.Publish("flow/in", b"x", qos=2, packet_id=pid))
    assert raw.closed_by_broker()
    assert [type(p) for p in raw.inbox[:2]] == [P.Pubrec, P.Pubrec]
    assert raw.inbox[-1].reason_code == R.RECEIVE_MAXIMUM_EXCEEDED


def test_messages_larger_than_the_clients_maximum_packet_size_are_dropped(broker, cid):
    raw = raw_sub(broker.port, cid, "size/out", maximum_packet_size=100)
    pub = publisher(broker.port, cid)
    pub.publish("size/out", b"x" * 200, 1)
    pub.publish("size/out", b"small", 1)
    got = raw.recv()
    assert got.payload == b"small"
    raw.send(P.Puback(got.packet_id))
    _, out = broker.admin("metrics", "show")
    assert "counter.queue_message_too_large = 1" in out


def test_packets_above_max_message_size_get_packet_too_large(make_broker, cid):
    node = make_broker({"max_message_size": "100"})
    raw = Raw(node.port, 5)
    assert raw.connect(cid).properties["maximum_packet_size"] == 100
    raw.send(P.Publish("size/in", b"x" * 200))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.PACKET_TOO_LARGE
