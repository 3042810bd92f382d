"""Plumtree (vmqpy/cluster/plumtree.py) over a simulated full mesh: every node delivers every message
once, duplicates prune the mesh to a tree, and grafts repair it when a link loses messages."""

from collections import deque

from vmqpy.cluster.plumtree import Plumtree

NAMES = [f"n{i}" for i in range(6)]


def mesh():
    trees = {n: Plumtree(n, graft_after=1.0) for n in NAMES}
    for t in trees.values():
        t.peers(NAMES)
    return trees


def run(trees, origin, mid, cut=frozenset(), now=0.0):
    """Broadcast from `origin`; deliver until quiet, dropping what crosses a `cut` link.
    Returns (deliveries per node, gossip messages sent)."""
    delivered = {n: 0 for n in trees}
    delivered[origin] = 1
    queue = deque((origin, p, m) for p, m in trees[origin].broadcast(mid, f"payload {mid}"))
    gossips = 0
    for _ in range(3):  # rounds of ticks, for grafts
        while queue:
            src, dst, msg = queue.popleft()
            gossips += msg[0] == "gossip"
            if frozenset((src, dst)) in cut:
                continue
            payload, out = trees[dst].receive(src, msg, now)
            if payload is not None:
                assert payload == f"payload {mid}"
                delivered[dst] += 1
            queue.extend((dst, p, m) for p, m in out)
        now += 1.5
        for n, t in trees.items():
            queue.extend((n, p, m) for p, m in t.tick(now))
    return delivered, gossips


def test_every_node_delivers_each_message_once_and_the_mesh_prunes_to_a_tree():
    trees = mesh()
    first, gossips_first = run(trees, "n0", 1)
    assert set(first.values()) == {1}
    second, gossips_second = run(trees, "n0", 2)
    assert set(second.values()) == {1}
    assert gossips_second < gossips_first
    assert gossips_second == len(NAMES) - 1  # a spanning tree: one push per other node


def test_a_lossy_eager_link_is_repaired_by_a_graft():
    trees = mesh()
    run(trees, "n0", 1)
    eager = next(iter(trees["n0"].eager))
    delivered, _ = run(trees, "n0", 2, cut=frozenset({frozenset(("n0", eager))}))
    assert set(delivered.values()) == {1}  # reached over another link, announced, or grafted


def test_peers_follow_membership():
    t = Plumtree("me")
    t.peers(["me", "a", "b"])
    assert t.eager == {"a", "b"}
    t.receive("a", ("prune",), 0.0)
    t.peers(["a", "c"])
    assert (t.eager, t.lazy) == ({"c"}, {"a"})
