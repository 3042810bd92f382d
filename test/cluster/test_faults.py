"""Failure detection: a hung node (SIGSTOP) or a cut link is seen within the heartbeat timeout,
counted and logged as a netsplit, and healed when it answers again; the others keep serving."""

from __future__ import annotations

import pytest
from broker import wait_until
from clusterkit import metrics, persistent_sessions, running

FAST = {"cluster_heartbeat_timeout": "1500"}
ALLOW = {f"allow_{op}_during_netsplit": "on" for op in ("register", "publish", "subscribe", "unsubscribe")}


def _still_routes(a, b, cid):
    sub = a.client(f"{cid}-s")
    sub.connect()
    sub.subscribe(f"{cid}/t", 1)  # the barrier does not wait for the node that is gone
    pub = b.client(f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/t", b"still", 1)
    assert sub.expect(1)[0].payload == b"still"
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("fault", ["sigstop", "link_down"])
def test_silent_node_is_detected_and_healed(cluster_nodes, fault, cid):
    a, b, c = cluster_nodes(3, {**FAST, **ALLOW})  # the others serve on through the split
    if fault == "sigstop":
        c.pause()
    else:
        c.host.split()  # skips on loopback hosts
    for n in (a, b):
        wait_until(lambda n=n: running(n)[c.nodename] == "false", 15, f"{n.nodename} to see c down")
    assert metrics(a)["netsplit_detected"] >= 1
    assert f"node {c.nodename} is unreachable: netsplit detected" in a.log_text()
    _still_routes(a, b, cid)
    if fault == "sigstop":
        c.resume()
    else:
        c.host.heal()
    for n in (a, b, c):
        wait_until(lambda n=n: set(running(n).values()) == {"true"}, 30, f"{n.nodename} to see all up")
    assert metrics(a)["netsplit_resolved"] >= 1
    assert f"node {c.nodename} is reachable again: netsplit resolved" in a.log_text()
    _still_routes(a, c, f"{cid}-healed")


def _raw(node, cid: str, version: int):
    from clients import Raw

    r = Raw(node.port, version, node.mqtt_host)
    assert r.connect(cid).reason_code == 0
    return r


def _split_off(c, others):
    c.pause()
    for n in others:
        wait_until(lambda n=n: running(n)[c.nodename] == "false", 15, f"{n.nodename} to see the split")


def test_during_a_netsplit_each_operation_is_refused_with_its_reason_code(cluster_nodes, cid):
    from vmqpy.mqtt import packets as P

    a, b, c = cluster_nodes(3, FAST)
    v5, v3 = _raw(a, f"{cid}-5", 5), _raw(a, f"{cid}-3", 4)
    _split_off(c, (a, b))
    from clients import Raw

    assert Raw(a.port, 5, a.mqtt_host).connect(f"{cid}-late").reason_code == 0x88  # Server unavailable
    assert Raw(a.port, 4, a.mqtt_host).connect(f"{cid}-late3").reason_code == 3  # v3: server unavailable
    v5.send(P.Subscribe(1, [(f"{cid}/t", P.SubOpts(1))]))
    assert v5.recv().reason_codes == [0x80]
    v5.send(P.Publish(f"{cid}/t", b"x", 1, packet_id=2))
    assert v5.recv().reason_code == 0x80
    v5.send(P.Unsubscribe(3, [f"{cid}/t"]))
    assert v5.recv().reason_codes == [0x80]
    v3.send(P.Publish(f"{cid}/t", b"x", 1, packet_id=4))
    v3.send(P.Pingreq())
    assert isinstance(v3.recv(), P.Pingresp)  # no PUBACK before it: v3 has no refusal, the client resends
    counts = metrics(a)
    assert counts["netsplit_register_refused"] == 2 and counts["netsplit_subscribe_refused"] == 1
    assert counts["netsplit_publish_refused"] == 2 and counts["netsplit_unsubscribe_refused"] == 1
    c.resume()
    wait_until(lambda: set(running(a).values()) == {"true"}, 30, "healed")
    v5.send(P.Subscribe(5, [(f"{cid}/t", P.SubOpts(1))]))
    assert v5.recv().reason_codes == [1]


def test_with_the_keys_on_operations_succeed_during_the_split_and_converge(cluster_nodes, cid):
    a, b, c = cluster_nodes(3, {**FAST, **ALLOW})
    _split_off(c, (a, b))
    sub = a.client(f"{cid}-s")  # registered and subscribed on the majority side during the split
    sub.connect()
    sub.subscribe(f"{cid}/t", 1)
    retained = b.client(f"{cid}-r")
    retained.connect()
    retained.publish(f"{cid}/r", b"set during the split", 1, retain=True)
    c.resume()
    wait_until(lambda: set(running(c).values()) == {"true"}, 30, "healed")
    pub = c.client(f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/t", b"after the heal", 1)
    assert sub.expect(1)[0].payload == b"after the heal"  # c learned the subscription
    late = c.client(f"{cid}-l")
    late.connect()
    late.subscribe(f"{cid}/r", 1)
    assert late.expect(1)[0].payload == b"set during the split"  # and the retained message


@pytest.mark.parametrize("mode", ["netns"], indirect=True)
def test_duplicate_sessions_made_during_the_split_end_as_one(cluster_nodes, cid):
    a, b, c = cluster_nodes(3, {**FAST, **ALLOW})
    older = c.client(cid)
    older.connect()
    c.host.split()
    for n in (a, c):
        wait_until(lambda n=n: "false" in running(n).values(), 15, f"{n.nodename} to see the split")
    newer = a.client(cid)  # c cannot be asked to give the session up: both sides have one now
    newer.connect()
    c.host.heal()
    assert older.disconnected.wait(30)  # the one registered first gives way
    assert not newer.disconnected.is_set()
    wait_until(lambda: sum(r.get("client_id") == cid for n in (a, b, c) for r in n.rows("session", "show",
                                                                                       "--client_id")) == 1,
               15, "one session left")


def _held(node, name: str) -> tuple[int, int]:
    """(sessions, offline messages) that `node` last heard `name` keeps (cluster show --sessions)."""
    row = next(r for r in node.rows("cluster", "show", "--sessions") if r["Node"] == name)
    return int(row["Sessions"]), int(row["Offline messages"])


@pytest.mark.parametrize("replica", ["off", "on"])
def test_a_dead_node_removed_from_a_live_member_leaves_its_sessions_behind(cluster_nodes, replica, cid):
    a, b, c = cluster_nodes(3, {**FAST, "offline_message_replica": replica})
    ids = [f"{cid}-{i}" for i in range(6)]
    persistent_sessions(c, ids, lambda i: f"{cid}/{i}")  # held on c, with their subscriptions
    pub = a.client(f"{cid}-p")
    pub.connect()
    for i in ids[:3]:
        pub.publish(f"{cid}/{i}", b"only on c", 1)
    pub.publish(f"{cid}/{ids[3]}", b"delivered before c died", 1)
    drained = c.client(ids[3], clean=False)  # its copy goes when it is acknowledged
    drained.connect()
    assert drained.expect(1)[0].payload == b"delivered before c died"
    drained.disconnect()
    wait_until(lambda: _held(a, c.nodename) == (6, 3), 15, "a to know what c keeps")
    c.kill()  # gone for good
    wait_until(lambda: running(a)[c.nodename] == "false", 15, "a to see c down")
    ok, out = a.admin("cluster", "leave", f"node={c.nodename}")
    assert ok, out
    fate = ("6 of its persistent sessions re-created on the nodes that stay, " +
            ("3 offline messages restored from their copies" if replica == "on"
             else "3 offline messages that were only on its disk are lost"))
    assert out == f"Done: {c.nodename} was down: {fate}"
    assert fate in a.log_text()
    # the leave answers once the sessions are back: clients reconnecting at once find them
    for n, (i, node) in enumerate(zip(ids, (a, b) * 3, strict=True)):  # the clients come back anywhere
        s = node.client(i, clean=False)
        _, flags, _ = s.connect()
        assert flags.session_present
        if replica == "on" and n < 3:
            assert s.expect(1)[0].payload == b"only on c"
        pub.publish(f"{cid}/{i}", b"after", 1)
        assert s.expect(1)[0].payload == b"after"


def test_a_hung_node_holds_publishers_back_only_until_it_is_seen_down(cluster_nodes, cid):
    """What a stopped peer does not read fills its link (4 MiB of socket buffer), holding the publishers
    back; once it is seen down, QoS 0 for it is dropped and counted, the rest goes on, nothing piles up."""
    a, c = cluster_nodes(2, {**FAST, **ALLOW})
    far = c.client(f"{cid}-far")
    far.connect()
    far.subscribe(f"{cid}/t", 0)
    pub = a.client(f"{cid}-p")
    pub.connect()
    c.pause()
    for _ in range(10_000):  # 10 MB for c: more than its link takes
        pub.publish(f"{cid}/t", b"x" * 1000, 0, wait=False)
    pub.publish(f"{cid}/done", b"", 1)  # acked: the publisher was held back, not stopped
    counts = metrics(a)
    assert counts["cluster_bytes_dropped"] > 1_000_000 and counts["cluster_link_queue"] < 1000
    assert running(a)[c.nodename] == "false"
    c.resume()
    wait_until(lambda: running(a)[c.nodename] == "true", 30, "c back")
