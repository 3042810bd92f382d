"""A cluster of real nodes (each in its own network namespace when root): join, show, leave,
cross-node delivery in order without loss or duplicates, retained messages everywhere."""

from __future__ import annotations

import pytest
from broker import wait_until
from clusterkit import metrics, persistent_sessions, running, same_port
from netns import cluster_conf


def _subscribe(node, cid, topic, qos):
    c = node.client(cid)
    c.connect()
    c.subscribe(topic, qos)
    return c


def test_join_show_and_leave(three):
    a, b, c = three
    ok, out = c.admin("cluster", "leave", f"node={c.nodename}")
    assert ok, out
    for node in (a, b):
        wait_until(lambda node=node: set(running(node)) == {a.nodename, b.nodename}, 15, "c gone from the table")
    wait_until(lambda: set(running(c)) == {c.nodename}, 15, "c standing alone")


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_cross_node_delivery_in_order_without_loss_or_duplicates(three, qos, cid):
    a, b, c = three
    subs = [_subscribe(n, f"{cid}-s{i}", f"{cid}/#", qos) for i, n in enumerate((a, c))]
    pub = b.client(f"{cid}-p")
    pub.connect()
    for i in range(200):
        pub.publish(f"{cid}/seq", str(i).encode(), qos, wait=qos > 0)
    for s in subs:
        got = [int(m.payload) for m in s.expect(200)]
        assert got == list(range(200))
        s.expect_none(0.3)
    sent, received = metrics(b), metrics(a)
    assert sent["router_matches_remote"] >= 400  # one copy per node with matches, not per subscriber
    assert sent["cluster_bytes_sent"] > 200 * 2 and received["cluster_bytes_received"] > 200


def test_subscription_routes_as_soon_as_suback_is_in(three, cid):
    a, b, _ = three
    pub = b.client(f"{cid}-p")
    pub.connect()
    for i in range(20):
        sub = _subscribe(a, f"{cid}-s{i}", f"{cid}/t{i}", 1)
        pub.publish(f"{cid}/t{i}", b"now", 1)  # right after SUBACK, from another node
        assert sub.expect(1)[0].payload == b"now"
        sub.disconnect()


def test_retained_set_on_one_node_seen_and_cleared_everywhere(three, cid):
    a, b, c = three
    pub = a.client(f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/r", b"kept", 1, retain=True)
    for i, n in enumerate((b, c)):
        s = _subscribe(n, f"{cid}-s{i}", f"{cid}/r", 1)
        assert s.expect(1)[0].payload == b"kept"
        s.disconnect()
    wait_until(lambda: any(r.get("topic") == f"{cid}/r" for r in c.rows("retain", "show")), 10, "retain show")
    pub.publish(f"{cid}/r", b"", 1, retain=True)
    for n in (b, c):
        wait_until(lambda n=n: not any(r.get("topic") == f"{cid}/r" for r in n.rows("retain", "show")), 10,
                   "cleared everywhere")


def test_restarted_node_rejoins_without_a_new_join(three, cid):
    a, b, c = three
    _subscribe(c, f"{cid}-clean", f"{cid}/stale", 1)  # a clean session: gone with the crash
    kept = c.client(f"{cid}-kept", clean=False)
    kept.connect()
    kept.subscribe(f"{cid}/kept", 1)
    kept.disconnect()
    c.restart(crash=True)
    wait_until(c.ping, 20, "c synced again")
    assert running(c) == {n.nodename: "true" for n in three}
    sub = _subscribe(c, f"{cid}-s", f"{cid}/t", 1)
    pub = a.client(f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/t", b"after restart", 1)
    assert sub.expect(1)[0].payload == b"after restart"
    assert not [r for r in c.rows("session", "show", "--client_id") if r["client_id"] == f"{cid}-clean"]
    forwarded = metrics(a)["router_matches_remote"]
    pub.publish(f"{cid}/stale", b"nobody", 1)  # c no longer subscribes on its behalf
    assert metrics(a)["router_matches_remote"] == forwarded
    back = c.client(f"{cid}-kept", clean=False)
    _, flags, _ = back.connect()
    assert flags.session_present
    pub.publish(f"{cid}/kept", b"still routed", 1)
    assert back.expect(1)[0].payload == b"still routed"


def test_wrong_cookie_cannot_join(mode, hosts, make_node):
    h = hosts(2, netns=(mode == "netns"))
    cport = same_port(h)
    a = make_node(h[0], cluster_conf(h[0], cport, cookie="one"))
    b = make_node(h[1], cluster_conf(h[1], cport, cookie="two"))
    ok, out = b.admin("cluster", "join", f"discovery-node={a.nodename}")
    assert not ok and "did not answer" in out
    assert set(running(b)) == {b.nodename}
    wait_until(lambda: "wrong cookie" in a.log_text(), 10, "refusal in a's log")


def test_persistent_session_moves_with_its_offline_messages(cluster_nodes, cid):
    a, b, c = cluster_nodes(3, {"max_offline_messages": "-1"})
    sub = a.client(f"{cid}-s", clean=False)
    sub.connect()
    sub.subscribe(f"{cid}/q", 1)
    sub.disconnect()
    pub = c.client(f"{cid}-p")
    pub.connect()
    for i in range(1000):
        pub.publish(f"{cid}/q", str(i).encode(), 1, wait=False)
    pub.publish(f"{cid}/q", b"last", 1)  # acked: everything before it is stored on a
    again = b.client(f"{cid}-s", clean=False)
    _, flags, _ = again.connect()
    assert flags.session_present
    got = [m.payload for m in again.expect(1001, timeout=30)]
    assert got == [str(i).encode() for i in range(1000)] + [b"last"]
    again.expect_none(0.3)
    pub.publish(f"{cid}/q", b"routed to b now", 1)  # the subscription moved with the session
    assert again.expect(1)[0].payload == b"routed to b now"
    assert not any(r.get("client_id") == f"{cid}-s" for r in a.rows("session", "show"))


def test_same_client_id_on_two_nodes_ends_with_one_session(three, cid):
    a, b, _ = three
    first = a.client(cid)
    first.connect()
    second = b.client(cid)
    second.connect()
    assert first.disconnected.wait(10)  # taken over from the other node
    wait_until(lambda: [r for n in three for r in n.rows("session", "show", "--client_id")
                        if r.get("client_id") == cid] == [{"client_id": cid}], 10, "one session left")


def test_takeover_from_another_node_says_why_and_publishes_the_will(three, cid):
    from clients import V5

    a, b, c = three
    watcher = _subscribe(c, f"{cid}-w", f"{cid}/will", 1)
    first = a.client(cid, version=V5).will(f"{cid}/will", b"gone", 1)
    first.connect()
    second = b.client(cid, version=V5)
    second.connect()
    assert first.disconnected.wait(10)
    assert first.disconnect_reason == 0x8E  # Session taken over
    assert watcher.expect(1)[0].payload == b"gone"


def test_racing_connects_leave_exactly_one_session(three, cid):
    import threading

    clients = [n.client(cid) for n in three for _ in range(2)]
    threads = [threading.Thread(target=c.connect, kwargs={"expect_ok": False}) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: sum(r.get("client_id") == cid for n in three for r in n.rows("session", "show",
                                                                                     "--client_id")) == 1,
               15, "exactly one session")


def test_nodes_with_two_workers_each(cluster_nodes, cid):
    """Workers and nodes are one mesh: clients on every worker of every node reach each other, and a
    session moves from a worker of one node to a worker of another."""
    a, b = cluster_nodes(2, {"max_offline_messages": "-1"}, workers=2)
    subs = [a.client(f"{cid}-s{i}") for i in range(4)]  # client ids spread over a's two workers
    for s in subs:
        s.connect()
        s.subscribe(f"{cid}/all", 1)
    pubs = [b.client(f"{cid}-p{i}") for i in range(4)]
    for i, p in enumerate(pubs):
        p.connect()
        p.publish(f"{cid}/all", str(i).encode(), 1)
    for s in subs:
        assert sorted(m.payload for m in s.expect(4)) == [b"0", b"1", b"2", b"3"]
    keep = a.client(f"{cid}-k", clean=False)
    keep.connect()
    keep.subscribe(f"{cid}/k", 1)
    keep.disconnect()
    for i in range(50):
        pubs[0].publish(f"{cid}/k", str(i).encode(), 1)
    moved = b.client(f"{cid}-k", clean=False)
    assert moved.connect()[1].session_present
    assert [int(m.payload) for m in moved.expect(50)] == list(range(50))


def test_concurrent_retained_writes_end_the_same_everywhere(three, cid):
    import threading

    pubs = [n.client(f"{cid}-p{i}") for i, n in enumerate(three)]
    for p in pubs:
        p.connect()
    for round_ in range(10):
        topic = f"{cid}/r{round_}"
        threads = [threading.Thread(target=p.publish, args=(topic, f"from {i}".encode(), 1, True))
                   for i, p in enumerate(pubs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def values(node):
        return {r["topic"]: r["payload"] for r in node.rows("retain", "show", "--payload", "--topic")
                if r["topic"].startswith(cid)}

    wait_until(lambda: len(values(three[0])) == 10 and all(values(n) == values(three[0]) for n in three), 15,
               "the same retained value on every node")


def test_qos1_for_a_stopped_node_beyond_its_buffer_is_not_acked(cluster_nodes, cid):
    """outgoing_clustering_buffer_size bounds what waits for a node that is down; what does not fit
    is counted as dropped and its publisher gets no PUBACK (it resends), never a silent loss."""
    a, b = cluster_nodes(2, {"outgoing_clustering_buffer_size": "2KB", "allow_register_during_netsplit": "on",
                             "allow_publish_during_netsplit": "on"})
    sub = b.client(f"{cid}-s", clean=False)
    sub.connect()
    sub.subscribe(f"{cid}/t", 1)
    sub.disconnect()
    b.stop()
    wait_until(lambda: running(a)[b.nodename] == "false", 15, "b seen down")
    pub = a.client(f"{cid}-p")
    pub.connect()
    info = pub.publish(f"{cid}/t", b"x" * 5000, 1, wait=False)
    assert pub.disconnected.wait(10)  # the batch could not be confirmed: no ack, the client resends
    assert not info.is_published()
    assert metrics(a)["cluster_bytes_dropped"] >= 5000


def test_leave_with_kill_sessions_moves_every_queue_to_the_nodes_that_stay(cluster_nodes, cid):
    a, b, c = cluster_nodes(3, {"max_offline_messages": "-1"})
    ids = [f"{cid}-{i}" for i in range(10)]
    persistent_sessions(c, ids, lambda client_id: f"{cid}/{client_id}")
    pub = a.client(f"{cid}-p")
    pub.connect()
    for client_id in ids:
        for i in range(100):
            pub.publish(f"{cid}/{client_id}", str(i).encode(), 1, wait=False)
    pub.publish(f"{cid}/{ids[-1]}", b"100", 1)  # every earlier one is acked and stored on c
    ok, out = c.admin("cluster", "leave", f"node={c.nodename}", "-k", "-i", "1", "-t", "60")
    assert ok and "10 sessions moved (1001 messages), 0 left" in out, out
    for n in (a, b):
        wait_until(lambda n=n: c.nodename not in running(n), 15, "c gone")
    for k, client_id in enumerate(ids):
        back = (a, b)[k % 2].client(client_id, clean=False)
        assert back.connect()[1].session_present
        want = 101 if client_id == ids[-1] else 100
        assert [int(m.payload) for m in back.expect(want)] == list(range(want))
        back.disconnect()
    assert "sessions moved" in c.log_text()


def test_an_api_key_made_on_one_node_opens_every_node(three):
    a, b, c = three
    ok, out = a.admin("api-key", "add", "key=clusterwide0123456789")
    assert ok, out
    for n in (b, c):
        wait_until(lambda n=n: any(r["Key"] == "clusterwide0123456789" for r in n.rows("api-key", "show")), 10,
                   f"the key on {n.nodename}")
    ok, out = c.admin("api-key", "delete", "key=clusterwide0123456789")
    assert ok, out
    wait_until(lambda: not a.rows("api-key", "show"), 10, "deleted everywhere")


def test_set_all_changes_a_setting_on_every_node(three):
    a, b, c = three
    ok, out = b.admin("set", "max_inflight_messages=7", "--all")
    assert ok, out
    for n in three:
        wait_until(lambda n=n: "7" in n.admin("show", "max_inflight_messages")[1], 10, f"set on {n.nodename}")
    c.restart(crash=True)
    assert "7" in c.admin("show", "max_inflight_messages")[1]  # kept in the replicated metadata


def test_a_late_joiner_answers_pong_only_once_it_has_the_clusters_state(mode, hosts, make_node, cid):
    hs = hosts(3, netns=(mode == "netns"))
    cport = same_port(hs)
    a, b = (make_node(h, cluster_conf(h, cport)) for h in hs[:2])
    ok, out = b.admin("cluster", "join", f"discovery-node={a.nodename}")
    assert ok, out
    sub = a.client(f"{cid}-s")
    sub.connect()
    topics = [f"{cid}/t/{i}" for i in range(20_000)]
    for i in range(0, len(topics), 1000):
        sub.subscribe([(t, 1) for t in topics[i:i + 1000]])
    pub = b.client(f"{cid}-r")
    pub.connect()
    for i in range(2000):
        pub.publish(f"{cid}/r/{i}", b"kept", 1, retain=True, wait=i == 1999)
    c = make_node(hs[2], cluster_conf(hs[2], cport))
    ok, out = c.admin("cluster", "join", f"discovery-node={b.nodename}")
    assert ok, out
    wait_until(c.ping, 30, "c ready")
    assert metrics(c)["retain_messages"] == 2000  # every retained message is here at pong
    late = c.client(f"{cid}-p")
    late.connect()
    sample = topics[::400] + topics[-1:]
    for t in sample:  # and every subscription routes from here
        late.publish(t, b"routed", 1)
    assert sorted(m.topic for m in sub.expect(len(sample))) == sorted(sample)
