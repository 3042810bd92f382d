"""Shared subscriptions with members on two nodes and an offline member: shared_subscription_policy
as VerneMQ's, and online members (anywhere) always before offline ones."""

from __future__ import annotations

import queue

import pytest

N = 60


def _into(common: queue.Queue, **clients) -> None:
    """Every message the clients get goes to one queue, as (client name, payload as int)."""
    for name, c in clients.items():
        c.c.on_message = lambda cl, u, m, name=name: common.put((name, int(m.payload)))


def _take(common: queue.Queue, n: int) -> dict[str, list[int]]:
    """The next `n` messages by client; no payload twice."""
    got: dict[str, list[int]] = {}
    for _ in range(n):
        name, x = common.get(timeout=10)
        got.setdefault(name, []).append(x)
    everything = [x for v in got.values() for x in v]
    assert len(everything) == len(set(everything)), "a message was delivered twice"
    return got


@pytest.mark.parametrize("mode", ["auto"], indirect=True)
@pytest.mark.parametrize("policy", ["prefer_local", "local_only", "random"])
def test_shared_subscription_policies_across_nodes(cluster_nodes, policy, cid):
    a, b = cluster_nodes(2, {"shared_subscription_policy": policy})
    group = f"$share/g/{cid}/t"
    sleeper = a.client(f"{cid}-off", clean=False)  # a member that is offline from here on
    sleeper.connect()
    sleeper.subscribe(group, 1)
    sleeper.disconnect()
    a1, b1 = a.client(f"{cid}-a1"), b.client(f"{cid}-b1")
    for c in (a1, b1):
        c.connect()
        c.subscribe(group, 1)
    common: queue.Queue = queue.Queue()
    _into(common, a1=a1, b1=b1)
    pub_a, pub_b = a.client(f"{cid}-pa"), b.client(f"{cid}-pb")
    for p in (pub_a, pub_b):
        p.connect()

    for pub, here, there in ((pub_a, "a1", "b1"), (pub_b, "b1", "a1")):
        for i in range(N):
            pub.publish(f"{cid}/t", str(i).encode(), 1)
        got = _take(common, N)
        if policy == "random":
            assert len(got.get("a1", ())) and len(got.get("b1", ())), got
        else:  # an online member on the publisher's node takes every message
            assert sorted(got.get(here, ())) == list(range(N)) and there not in got, got

    # A's only online member leaves: only local_only lets A's offline member have A's messages
    a1.disconnect()
    for i in range(N):
        pub_a.publish(f"{cid}/t", str(i).encode(), 1)
    if policy != "local_only":
        assert sorted(_take(common, N)["b1"]) == list(range(N))
    b1.expect_none(0.3)
    back = a.client(f"{cid}-off", clean=False)
    back.connect()
    if policy == "local_only":
        assert sorted(int(m.payload) for m in back.expect(N)) == list(range(N))
    back.expect_none(0.3)


@pytest.mark.parametrize("mode", ["auto"], indirect=True)
def test_shared_messages_of_a_member_going_offline_go_to_an_online_member_on_another_node(cluster_nodes, cid):
    a, b = cluster_nodes(2)
    group = f"$share/g/{cid}/t"
    slow = a.client(f"{cid}-slow", clean=False)
    slow.connect()
    slow.subscribe(group, 1)
    slow.c.loop_stop()  # stops reading: what A sends it stays unacknowledged
    other = b.client(f"{cid}-b1")
    other.connect()
    other.subscribe(group, 1)
    pub = a.client(f"{cid}-p")
    pub.connect()
    for i in range(N):
        pub.publish(f"{cid}/t", str(i).encode(), 1)  # prefer_local: all to the slow member on A
    other.expect_none(0.2)
    slow.drop()  # offline: its unacknowledged QoS 1 shared messages go to B's online member
    assert sorted(int(m.payload) for m in other.expect(N)) == list(range(N))
