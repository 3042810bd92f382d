"""Wills at their edges: a will topic no message could have, and the will and session present of a
connection another one takes over, for MQTT 3.1.1 and 5."""

from __future__ import annotations

import pytest
from clients import V5, Paho, Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R


def watch(port: int, cid: str, topic: str) -> Paho:
    w = Paho(port, cid + "-w", V5)
    w.connect()
    w.subscribe(topic, 1)
    return w


def marker(port: int, cid: str, topic: str) -> None:
    """Publish a marker: a watcher that gets it next got no will before it."""
    pub = Paho(port, cid + "-m", V5)
    pub.connect()
    pub.publish(topic, "marker", 1)
    pub.disconnect()


# -- the will topic ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("topic, v5_code", [("", R.MALFORMED_PACKET), ("will/+/x", R.TOPIC_NAME_INVALID),
                                            ("will/#", R.TOPIC_NAME_INVALID)])
def test_a_will_topic_no_message_can_have_is_refused(broker, cid, version, topic, v5_code):
    raw = Raw(broker.port, version)
    raw.send(P.Connect(cid, proto_level=version, will=P.Will(topic, b"will", 1)))
    assert raw.closed_by_broker()
    if version == 5:
        assert [(type(p), p.reason_code) for p in raw.inbox] == [(P.Connack, v5_code)]
    else:
        assert raw.inbox == []  # 3.1.1 has no return code for it: the connection closes
    assert not broker.rows("session", "show", f"--client_id={cid}")
    assert "will topic" in broker.log_text()


# -- takeover ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [4, 5])
def test_taking_over_a_clean_session_has_no_session_present_and_publishes_the_will(broker, cid, version):
    """The first connection's session ends with it (clean session / Clean Start and no expiry): a
    second connection asking for a persistent session gets a new one, and the first one's will
    goes out as its connection is closed (3.1.1 §3.1.4, 5 §3.1.3.2.2: the session ended)."""
    watcher = watch(broker.port, cid, "will/takeover")
    first = Raw(broker.port, version)
    assert first.connect(cid, clean=True, will=P.Will("will/takeover", b"first's will", 1)).reason_code == 0
    second = Raw(broker.port, version)
    props = {"session_expiry_interval": 60} if version == 5 else None
    ack = second.connect(cid, clean=False, properties=props)
    assert (ack.reason_code, ack.session_present) == (0, False)
    assert first.closed_by_broker()
    assert watcher.expect(1)[0].payload == b"first's will"
    second.close()


def test_taking_over_a_persistent_v5_session_within_the_will_delay_sends_no_will(broker, cid):
    watcher = watch(broker.port, cid, "will/kept")
    first = Raw(broker.port, 5)
    will = P.Will("will/kept", b"first's will", 1, properties={"will_delay_interval": 3600})
    first.connect(cid, clean=True, will=will, properties={"session_expiry_interval": 3600})
    second = Raw(broker.port, 5)
    ack = second.connect(cid, clean=False, properties={"session_expiry_interval": 3600})
    assert (ack.reason_code, ack.session_present) == (0, True)
    assert first.closed_by_broker()
    marker(broker.port, cid, "will/kept")
    assert watcher.expect(1)[0].payload == b"marker"
    second.close()


def test_taking_over_a_persistent_v311_session_publishes_the_will(broker, cid):
    """3.1.1 has no will delay: the server closes the first connection without a DISCONNECT."""
    watcher = watch(broker.port, cid, "will/v311")
    first = Raw(broker.port, 4)
    first.connect(cid, clean=False, will=P.Will("will/v311", b"first's will", 1))
    second = Raw(broker.port, 4)
    ack = second.connect(cid, clean=False)
    assert (ack.reason_code, ack.session_present) == (0, True)
    assert watcher.expect(1)[0].payload == b"first's will"
    second.close()
