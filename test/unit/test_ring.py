"""The claim ring: deterministic, balanced, little movement on join/leave (vmqpy/cluster/ring.py)."""

import math
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmqpy.cluster.ring import Ring

NODES = [f"VerneMQ@10.0.0.{i}" for i in range(1, 6)]

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
member_sets = st.sets(names, min_size=1, max_size=12)
sizes = st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256])


def test_bad_arguments():
    for size in (0, -1, 3, 12, 64.0, True):
        with pytest.raises(ValueError):
            Ring(size, NODES)
    with pytest.raises(ValueError):
        Ring(64, [])
    with pytest.raises(ValueError):
        Ring(64, [""])
    with pytest.raises(ValueError):
        Ring(64, ["a", 1])
    with pytest.raises(ValueError):
        Ring(64, NODES).preflist("c", 0)
    with pytest.raises(ValueError):
        Ring.moved(Ring(64, NODES), Ring(32, NODES))


def test_pinned_claim_and_hash():
    # Every node and every version must compute these same owners: changing them is a cluster protocol change.
    ring = Ring(8, NODES[:3])
    a, b, c = NODES[:3]
    assert ring.owners == (c, c, a, c, b, b, a, b)
    assert ring.partition(b"client-1") == 6
    assert Ring(64, ["x"]).partition("client-1") == 30


def test_same_ring_in_another_process():
    # Python's hash() is salted per process; the ring must not depend on it.
    code = f"from vmqpy.cluster.ring import Ring; r = Ring(64, {NODES!r}); print(r.owners, r.partition('c1'))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    ring = Ring(64, NODES)
    assert outs == {f"{ring.owners} {ring.partition('c1')}\n"}


def test_accessors():
    ring = Ring(64, reversed(NODES))
    assert ring.members == tuple(sorted(NODES))
    assert len(ring.owners) == 64
    assert ring.owner("client") == ring.owners[ring.partition("client")]
    assert ring.owner("client") == ring.owner(b"client")
    assert sorted(p for m in NODES for p in ring.partitions(m)) == list(range(64))
    assert ring.partitions("VerneMQ@elsewhere") == []
    assert ring == Ring(64, NODES) and hash(ring) == hash(Ring(64, NODES))
    assert ring != Ring(64, NODES[:4])
    assert "VerneMQ@10.0.0.1" in repr(ring)


def test_single_member_owns_everything():
    ring = Ring(64, ["solo@host"])
    assert set(ring.owners) == {"solo@host"}
    assert ring.preflist("k", 3) == ["solo@host"]


def test_more_members_than_partitions():
    ring = Ring(4, NODES)
    assert len(set(ring.owners)) == 4
    assert len(ring.preflist("k", 5)) == 4


def test_preflist_walks_the_ring():
    ring = Ring(64, NODES)
    for key in ("a", "b", "client-42"):
        pl = ring.preflist(key, 3)
        assert pl[0] == ring.owner(key)
        assert len(pl) == len(set(pl)) == 3
        start = ring.partition(key)
        walk = [ring.owners[(start + i) % 64] for i in range(64)]
        firsts = list(dict.fromkeys(walk))  # distinct owners in ring order
        assert pl == firsts[:3]
        assert ring.preflist(key, 99) == firsts


def test_join_moves_about_one_share():
    old, new = Ring(64, NODES[:4]), Ring(64, NODES)
    moved = Ring.moved(old, new)
    assert len(moved) <= math.ceil(64 / 5) + 4
    assert Counter(new.owners)[NODES[4]] in (12, 13)
    # the leave back is the same change
    assert Ring.moved(new, old) == moved


def test_average_movement_close_to_ideal():
    rng = random.Random(7)
    ratios = []
    for _ in range(100):
        n = rng.randint(2, 8)
        members = [f"VerneMQ@10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{i}" for i in range(n + 1)]
        moved = Ring.moved(Ring(64, members[:n]), Ring(64, members))
        ratios.append(len(moved) / math.ceil(64 / (n + 1)))
    assert sum(ratios) / len(ratios) < 1.35


@settings(max_examples=200, deadline=None, database=None)
@given(sizes, member_sets)
def test_balanced_and_order_independent(size, members):
    ring = Ring(size, members)
    counts = Counter(ring.owners)
    n = len(members)
    owned = [counts.get(m, 0) for m in members]
    assert set(owned) <= {size // n, -(-size // n)}
    assert sum(owned) == size
    assert Ring(size, sorted(members, reverse=True)).owners == ring.owners


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from([64, 128, 256]), st.sets(names, min_size=1, max_size=7), names)
def test_join_and_leave_move_little(size, members, newcomer):
    # Shares of 8+ partitions: the worst seen in 12,000 random cases was 2x the ideal. With shares of ~5
    # (64 partitions, 12+ members) rebalancing churn can reach ~3x; not asserted here.
    if newcomer in members:
        return
    old, new = Ring(size, members), Ring(size, members | {newcomer})
    moved = Ring.moved(old, new)
    ideal = math.ceil(size / len(new.members))
    assert ideal - 1 <= len(moved) <= 3 * ideal
    # every partition the newcomer got counts as moved; the rest of the churn is rebalancing
    assert set(new.partitions(newcomer)) <= set(moved)
    if len(members) > 1:
        leaver = min(members)
        gone = Ring(size, members - {leaver})
        assert set(old.partitions(leaver)) <= set(Ring.moved(old, gone))
        assert len(Ring.moved(old, gone)) <= 3 * math.ceil(size / len(members))


@settings(database=None)
@given(sizes, st.binary(max_size=64))
def test_partition_in_range(size, key):
    ring = Ring(size, ["a", "b"])
    assert 0 <= ring.partition(key) < size
    assert ring.owner(key) in ring.members
