"""MQTT 5 subscription options, subscription identifiers and SUBACK/UNSUBACK reason codes."""

from __future__ import annotations

from clients import PUBLISH_PROPS, SUBSCRIBE_PROPS, V5, Paho, Raw, props
from paho.mqtt.subscribeoptions import SubscribeOptions

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R


def client(port: int, cid: str) -> Paho:
    c = Paho(port, cid, V5)
    c.connect()
    return c


def test_no_local_suppresses_own_messages(broker, cid):
    c = client(broker.port, cid)
    c.subscribe("opt/nl", options=SubscribeOptions(qos=1, noLocal=True))
    other = client(broker.port, cid + "o")
    c.publish("opt/nl", "mine", 1)
    other.publish("opt/nl", "theirs", 1)
    assert c.expect(1)[0].payload == b"theirs"
    c.expect_none()


def test_retain_as_published(broker, cid):
    keep = client(broker.port, cid + "k")
    keep.subscribe("opt/rap", options=SubscribeOptions(qos=1, retainAsPublished=True))
    clear = client(broker.port, cid + "c")
    clear.subscribe("opt/rap", options=SubscribeOptions(qos=1))
    pub = client(broker.port, cid + "p")
    pub.publish("opt/rap", "r", 1, retain=True)
    assert keep.expect(1)[0].retain is True
    assert clear.expect(1)[0].retain is False
    pub.publish("opt/rap", "", 1, retain=True)


def test_retain_handling(broker, cid):
    pub = client(broker.port, cid + "p")
    pub.publish("opt/rh/x", "kept", 1, retain=True)
    c = client(broker.port, cid)
    c.subscribe("opt/rh/#", options=SubscribeOptions(qos=1, retainHandling=0))
    m = c.expect(1)[0]
    assert (m.payload, m.retain) == (b"kept", True)
    c.subscribe("opt/rh/#", options=SubscribeOptions(qos=1, retainHandling=1))  # exists: nothing
    c.subscribe("opt/+/x", options=SubscribeOptions(qos=1, retainHandling=2))  # never
    c.subscribe("opt/rh/+", options=SubscribeOptions(qos=1, retainHandling=1))  # new: sent
    m = c.expect(1)[0]
    assert (m.payload, m.retain) == (b"kept", True)
    c.expect_none()
    pub.publish("opt/rh/x", "", 1, retain=True)


def test_subscription_maximum_qos_downgrades(broker, cid):
    c = client(broker.port, cid)
    assert [rc.value for rc in c.subscribe("opt/qos", options=SubscribeOptions(qos=1))] == [1]
    client(broker.port, cid + "p").publish("opt/qos", "two", 2)
    assert c.expect(1)[0].qos == 1


def test_subscription_identifiers_one_per_matching_subscription(broker, cid):
    c = client(broker.port, cid)
    c.subscribe("sid/+", 1, properties=props(SUBSCRIBE_PROPS, SubscriptionIdentifier=7))
    c.subscribe("sid/#", 1, properties=props(SUBSCRIBE_PROPS, SubscriptionIdentifier=42))
    c.subscribe("sid/plain/none", 1)
    pub = client(broker.port, cid + "p")
    pub.publish("sid/a", "both", 1)
    m = c.expect(1)[0]
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 42]
    pub.publish("sid/plain/none", "one", 1, properties=props(PUBLISH_PROPS, ContentType="t"))
    m = c.expect(1)[0]
    assert m.properties.SubscriptionIdentifier == [42]
    c.expect_none()


def test_suback_reason_codes_per_filter(broker, cid):
    raw = Raw(broker.port, 5)
    raw.connect(cid)
    raw.send(P.Subscribe(1, [("rc/a", P.SubOpts(2)), ("rc/#/bad", P.SubOpts(1)), ("rc/b", P.SubOpts(0)),
                             ("$share//x", P.SubOpts(1))]))
    ack = raw.recv()
    assert ack.reason_codes == [R.GRANTED_QOS_2, R.TOPIC_FILTER_INVALID, R.GRANTED_QOS_0, R.TOPIC_FILTER_INVALID]


def test_unsuback_reason_codes(broker, cid):
    c = client(broker.port, cid)
    c.subscribe("un/a", 1)
    raw = Raw(broker.port, 5)
    raw.connect(cid + "r")
    raw.send(P.Subscribe(1, [("un/a", P.SubOpts(1))]))
    raw.recv()
    raw.send(P.Unsubscribe(2, ["un/a", "un/never"]))
    assert raw.recv().reason_codes == [R.SUCCESS, R.NO_SUBSCRIPTION_EXISTED]
