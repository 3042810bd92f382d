"""Failure detection: a hung node (SIGSTOP) or a cut link is seen within the heartbeat timeout,
counted and logged as a netsplit, and healed when it answers again; the others keep serving."""

from __future__ import annotations

import pytest
from broker import wait_until
from clusterkit import metrics, running

FAST = {"cluster_heartbeat_timeout": "1500"}


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
    a, b, c = cluster_nodes(3, FAST)
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
