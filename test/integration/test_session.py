"""Session behaviour: CONNECT rules, wills, takeover, persistence, keepalive, flow control."""

from __future__ import annotations

import time

import pytest
from clients import CONNECT_PROPS, V5, V311, Paho, Raw, props

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


# -- CONNECT ----------------------------------------------------------------
def test_empty_client_id_with_clean_session_gets_an_assigned_id(broker):
    raw = Raw(broker.port, version=5)
    ack = raw.connect("")
    assert ack.reason_code == 0
    assert ack.properties["assigned_client_identifier"].startswith("vmq-")


def test_empty_client_id_with_persistent_session_is_rejected_v311(broker):
    raw = Raw(broker.port)
    assert raw.connect("", clean=False).reason_code == R.IDENTIFIER_REJECTED


def test_client_id_longer_than_max_client_id_size_is_rejected(make_broker):
    node = make_broker({"max_client_id_size": "10"})
    assert Raw(node.port).connect("x" * 11).reason_code == R.IDENTIFIER_REJECTED
    assert Raw(node.port, 5).connect("x" * 11).reason_code == R.CLIENT_IDENTIFIER_NOT_VALID
    assert Raw(node.port).connect("x" * 10).reason_code == 0


def test_protocol_versions_restricted_per_listener(make_broker):
    node = make_broker({"listener.tcp.default.allowed_protocol_versions": "4"})
    assert Raw(node.port, 5).connect("v5").reason_code == R.UNSUPPORTED_PROTOCOL_VERSION
    assert Raw(node.port, 3).connect("v31").reason_code == R.UNACCEPTABLE_PROTOCOL
    assert Raw(node.port, 4).connect("v311").reason_code == 0


def test_mqtt31_client_round_trip(broker, cid):
    raw = Raw(broker.port, version=3)
    assert raw.connect(cid[:23]).reason_code == 0
    raw.send(P.Subscribe(1, [("v31/x", P.SubOpts(1))]))
    assert raw.recv().reason_codes == [1]
    raw.send(P.Publish("v31/x", b"old", qos=1, packet_id=2))
    got = [raw.recv(), raw.recv()]
    kinds = sorted(type(p).__name__ for p in got)
    assert kinds == ["Puback", "Publish"]


def test_anonymous_refused_when_allow_anonymous_off(make_broker):
    node = make_broker({"allow_anonymous": "off"})
    assert Raw(node.port).connect("anon").reason_code == R.NOT_AUTHORIZED_V3
    assert Raw(node.port, 5).connect("anon5").reason_code == R.NOT_AUTHORIZED


# -- wills --------------------------------------------------------------------
@pytest.mark.parametrize("version", [V311, V5])
def test_will_published_on_socket_drop(broker, cid, version):
    watcher = Paho(broker.port, cid + "w", version)
    watcher.connect()
    watcher.subscribe("will/drop", 1)
    dying = Paho(broker.port, cid + "d", version).will("will/drop", b"gone", 1)
    dying.connect()
    dying.drop()
    assert watcher.expect(1)[0].payload == b"gone"


@pytest.mark.parametrize("version", [V311, V5])
def test_no_will_on_disconnect(broker, cid, version):
    watcher = Paho(broker.port, cid + "w", version)
    watcher.connect()
    watcher.subscribe("will/clean", 1)
    leaving = Paho(broker.port, cid + "l", version).will("will/clean", b"never", 1)
    leaving.connect()
    leaving.disconnect()
    # Prove the absence against a later message on the same topic.
    marker = Paho(broker.port, cid + "m", version)
    marker.connect()
    marker.publish("will/clean", "marker", 1)
    assert watcher.expect(1)[0].payload == b"marker"


def test_will_published_on_malformed_packet(broker, cid):
    watcher = Paho(broker.port, cid + "w")
    watcher.connect()
    watcher.subscribe("will/bad", 0)
    raw = Raw(broker.port)
    raw.connect(cid + "r", will=P.Will("will/bad", b"broken"))
    raw.send(b"\x30\xff\xff\xff\xff\x7f")  # remaining length of 5 bytes
    assert raw.closed_by_broker()
    assert watcher.expect(1)[0].payload == b"broken"


# -- takeover -------------------------------------------------------------------
def test_second_connect_with_same_client_id_takes_over(broker, cid):
    first = Raw(broker.port, version=5)
    assert first.connect(cid).reason_code == 0
    second = Paho(broker.port, cid, V5)
    second.connect()
    assert first.closed_by_broker()
    assert isinstance(first.inbox[-1], P.Disconnect)
    assert first.inbox[-1].reason_code == R.SESSION_TAKEN_OVER
    # The new connection works.
    second.subscribe("take/x", 1)
    second.publish("take/x", "mine", 1)
    assert second.expect(1)[0].payload == b"mine"


def test_takeover_v311_closes_the_old_socket(broker, cid):
    first = Raw(broker.port)
    first.connect(cid)
    second = Raw(broker.port)
    assert second.connect(cid).reason_code == 0
    assert first.closed_by_broker()


# -- persistent sessions --------------------------------------------------------
@pytest.mark.parametrize("version", [V311, V5])
def test_persistent_session_receives_messages_published_while_offline(broker, cid, version):
    sub = Paho(broker.port, cid + "s", version, clean=False)
    expiry = props(CONNECT_PROPS, SessionExpiryInterval=3600) if version == V5 else None
    rc, flags, _ = sub.connect(expiry)
    sub.subscribe("offline/q", 1)
    sub.disconnect()
    pub = Paho(broker.port, cid + "p", version)
    pub.connect()
    for i in range(50):
        pub.publish("offline/q", f"m{i}", 1)
    again = Paho(broker.port, cid + "s", version, clean=False)
    rc, flags, _ = again.connect(expiry)
    assert flags.session_present
    got = again.expect(50)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(50)]


def test_clean_session_discards_the_old_session(broker, cid):
    sub = Paho(broker.port, cid, clean=False)
    sub.connect()
    sub.subscribe("cleaned/q", 1)
    sub.disconnect()
    fresh = Paho(broker.port, cid, clean=True)
    _, flags, _ = fresh.connect()
    assert not flags.session_present
    fresh.disconnect()
    back = Paho(broker.port, cid, clean=False)
    _, flags, _ = back.connect()
    assert not flags.session_present
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("cleaned/q", "x", 1)
    back.expect_none()


@pytest.mark.parametrize("queue_type, kept", [
    ("fifo", [b"0", b"1", b"2", b"3", b"4"]),   # fifo drops the newest
    ("lifo", [b"5", b"6", b"7", b"8", b"9"]),   # lifo drops the oldest
])
def test_max_offline_messages_drops_by_queue_type(make_broker, cid, queue_type, kept):
    node = make_broker({"max_offline_messages": "5", "queue_type": queue_type})
    sub = Paho(node.port, cid, clean=False)
    sub.connect()
    sub.subscribe("cap/q", 1)
    sub.disconnect()
    pub = Paho(node.port, cid + "p")
    pub.connect()
    for i in range(10):
        pub.publish("cap/q", str(i), 1)
    back = Paho(node.port, cid, clean=False)
    back.connect()
    got = [m.payload for m in back.expect(5)]
    assert (got if queue_type == "fifo" else sorted(got)) == kept  # fifo also keeps their order
    back.expect_none()
    ok, out = node.admin("metrics", "show")
    assert "counter.queue_message_drop = 5" in out


# -- keepalive ------------------------------------------------------------------
def test_keepalive_timeout_closes_the_connection(broker, cid):
    raw = Raw(broker.port, version=5)
    assert raw.connect(cid, keepalive=1).reason_code == 0
    started = time.monotonic()
    assert raw.closed_by_broker(timeout=10)
    assert time.monotonic() - started >= 1.4  # 1.5 x keepalive, not earlier
    assert isinstance(raw.inbox[-1], P.Disconnect)
    assert raw.inbox[-1].reason_code == R.KEEP_ALIVE_TIMEOUT


def test_pingreq_keeps_the_connection_alive(broker, cid):
    raw = Raw(broker.port)
    raw.connect(cid, keepalive=1)
    for _ in range(3):
        raw.send(P.Pingreq())
        assert isinstance(raw.recv(), P.Pingresp)
        time.sleep(0.8)  # idle time below 1.5 x keepalive is the behaviour under test


def test_keepalive_zero_never_times_out(broker, cid):
    raw = Raw(broker.port)
    assert raw.connect(cid, keepalive=0).reason_code == 0
    raw.send(P.Subscribe(1, [("ka0/t", P.SubOpts(0))]))
    assert isinstance(raw.recv(), P.Suback)
    raw.send(P.Publish("ka0/t", b"still here"))
    assert raw.recv().payload == b"still here"


# -- outgoing flow control -------------------------------------------------------
def _raw_subscriber(port: int, cid: str, filt: str, version: int = 4) -> Raw:
    raw = Raw(port, version)
    raw.connect(cid, clean=False)
    raw.send(P.Subscribe(1, [(filt, P.SubOpts(1))]))
    assert isinstance(raw.recv(), P.Suback)
    return raw


def test_max_inflight_messages_limits_unacked_deliveries(make_broker, cid):
    node = make_broker({"max_inflight_messages": "3"})
    raw = _raw_subscriber(node.port, cid, "infl/q")
    pub = Paho(node.port, cid + "p")
    pub.connect()
    for i in range(6):
        pub.publish("infl/q", str(i), 1)
    first = [raw.recv() for _ in range(3)]
    assert [p.payload for p in first] == [b"0", b"1", b"2"]
    with pytest.raises(TimeoutError):
        raw.recv(timeout=0.5)
    raw.send(P.Puback(first[0].packet_id))
    assert raw.recv().payload == b"3"


def test_retry_interval_resends_with_dup(make_broker, cid):
    node = make_broker({"retry_interval": "1"})
    raw = _raw_subscriber(node.port, cid, "retry/q")
    pub = Paho(node.port, cid + "p")
    pub.connect()
    pub.publish("retry/q", "again", 1)
    first = raw.recv()
    assert not first.dup
    second = raw.recv(timeout=5)
    assert second.dup and second.packet_id == first.packet_id and second.payload == b"again"


def test_unacked_message_resent_with_same_id_on_reconnect(broker, cid):
    raw = _raw_subscriber(broker.port, cid, "resend/q")
    pub = Paho(broker.port, cid + "p")
    pub.connect()
    pub.publish("resend/q", "unacked", 1)
    first = raw.recv()
    raw.close()
    back = Raw(broker.port)
    assert back.connect(cid, clean=False).session_present
    again = back.recv()
    assert again.dup and again.packet_id == first.packet_id and again.payload == b"unacked"


# -- several packets in one write ----------------------------------------------------
@pytest.mark.parametrize("version", [V311, V5])
def test_packets_of_one_write_keep_their_order(broker, cid, version):
    """A parked connection's publishes, acks and pings are handled in the hub, a batch with anything
    else in a reader greenlet (Session._wake): a write that mixes them is answered as always."""
    raw = Raw(broker.port, version)
    assert raw.connect(cid).reason_code == 0
    topic = f"mixed/{cid}"
    raw.send(b"".join(encode(p, version) for p in (
        P.Publish(topic, b"before", qos=1, packet_id=1),  # no subscriber yet
        P.Subscribe(2, [(topic, P.SubOpts(1))]),
        P.Publish(topic, b"after", qos=1, packet_id=3),
        P.Pingreq())))
    got = [raw.recv() for _ in range(5)]
    assert [type(p).__name__ for p in got] == ["Suback", "Publish", "Puback", "Puback", "Pingresp"]
    assert got[1].payload == b"after" and [got[2].packet_id, got[3].packet_id] == [1, 3]
    raw.send(P.Puback(got[1].packet_id))
    raw.send(P.Publish(topic, b"again", qos=1, packet_id=4))  # a batch of one publish: in the hub
    got = sorted((raw.recv(), raw.recv()), key=lambda p: type(p).__name__)
    assert [type(p).__name__ for p in got] == ["Puback", "Publish"] and got[1].payload == b"again"
    raw.send(P.Disconnect())
    assert raw.closed_by_broker()
