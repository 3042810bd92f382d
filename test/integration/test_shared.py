"""Shared subscriptions ($share/group/filter) for v3 and v5 clients."""

from __future__ import annotations

import collections
import threading

import pytest
from broker import wait_until
from clients import CONNECT_PROPS, V5, V311, Paho, Raw, props

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R


def member(port: int, cid: str, filt: str, version: int = V5, qos: int = 1) -> Paho:
    c = Paho(port, cid, version)
    c.connect()
    c.subscribe(filt, qos)
    return c


@pytest.mark.parametrize("version", [V311, V5])
def test_one_member_of_a_group_gets_each_message(broker, cid, version):
    topic = f"sh/one/{version}"
    group = [member(broker.port, f"{cid}-{i}", f"$share/g/{topic}", version) for i in range(2)]
    plain = member(broker.port, cid + "-plain", topic, version)
    pub = Paho(broker.port, cid + "-pub", version)
    pub.connect()
    for i in range(20):
        pub.publish(topic, str(i), 1)
    assert sorted(int(m.payload) for m in plain.expect(20)) == list(range(20))
    got = []
    wait_until(lambda: got.extend(m.payload for c in group for m in _drain(c)) or len(got) >= 20,
               what="group deliveries")
    assert sorted(int(p) for p in got) == list(range(20))


def _drain(c: Paho) -> list:
    out = []
    while not c.messages.empty():
        out.append(c.messages.get_nowait())
    return out


def test_3000_qos1_messages_exactly_once_across_a_group_of_3_roughly_balanced(broker, cid):
    counts: collections.Counter = collections.Counter()
    seen: collections.Counter = collections.Counter()
    lock = threading.Lock()
    done = threading.Event()
    n = 3000

    def on_message(name):
        def handler(c, u, m):
            with lock:
                counts[name] += 1
                seen[m.payload] += 1
                if sum(counts.values()) >= n:
                    done.set()
        return handler

    members = []
    for i in range(3):
        c = member(broker.port, f"{cid}-{i}", "$share/bal/sh/bal")
        c.c.on_message = on_message(i)
        members.append(c)
    pub = Paho(broker.port, cid + "-pub", V5)
    pub.connect()
    infos = [pub.publish("sh/bal", str(i), 1, wait=False) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    assert done.wait(30), f"only {sum(counts.values())} of {n} arrived"
    members[0].expect_none(0.3)  # nothing beyond the n messages
    assert len(seen) == n and set(seen.values()) == {1}, "each message exactly once across the group"
    assert all(counts[i] >= n * 0.2 for i in range(3)), counts


def test_inflight_messages_of_a_member_that_disconnects_go_to_another_member(broker, cid):
    stuck = Raw(broker.port, 5)  # never acknowledges
    stuck.connect(cid + "-stuck", properties={"receive_maximum": 5})
    stuck.send(P.Subscribe(1, [("$share/fo/sh/fo", P.SubOpts(1))]))
    stuck.recv()
    pub = Paho(broker.port, cid + "-pub", V5)
    pub.connect()
    for i in range(5):
        pub.publish("sh/fo", str(i), 1)
    got_by_stuck = [stuck.recv().payload for _ in range(5)]  # the only member: it gets all 5
    healthy = member(broker.port, cid + "-ok", "$share/fo/sh/fo")
    stuck.close()  # in flight, unacknowledged, then gone
    assert sorted(m.payload for m in healthy.expect(5)) == sorted(got_by_stuck)


def test_online_member_preferred_over_offline_one(broker, cid):
    away = Paho(broker.port, cid + "-away", V5, clean=False)
    away.connect(props(CONNECT_PROPS, SessionExpiryInterval=600))
    away.subscribe("$share/pref/sh/pref", 1)
    away.disconnect()
    here = member(broker.port, cid + "-here", "$share/pref/sh/pref")
    pub = Paho(broker.port, cid + "-pub", V5)
    pub.connect()
    for i in range(20):
        pub.publish("sh/pref", str(i), 1)
    assert len(here.expect(20)) == 20
    back = Paho(broker.port, cid + "-away", V5, clean=False)
    back.connect(props(CONNECT_PROPS, SessionExpiryInterval=600))
    back.expect_none()


def test_retained_messages_are_not_sent_on_a_shared_subscribe(broker, cid):
    pub = Paho(broker.port, cid + "-pub", V5)
    pub.connect()
    pub.publish("sh/ret", "kept", 1, retain=True)
    c = member(broker.port, cid, "$share/r/sh/ret")
    pub.publish("sh/ret", "live", 1)
    assert c.expect(1)[0].payload == b"live"
    pub.publish("sh/ret", "", 1, retain=True)


def test_no_local_on_a_shared_subscription_is_a_protocol_error(broker, cid):
    raw = Raw(broker.port, 5)
    raw.connect(cid)
    raw.send(P.Subscribe(1, [("$share/nl/sh/nl", P.SubOpts(1, no_local=True))]))
    assert raw.closed_by_broker()
    assert raw.inbox[-1].reason_code == R.PROTOCOL_ERROR
