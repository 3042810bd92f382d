"""Changing nr_of_workers between starts: stored state moves to the worker that owns it (cluster/partitions.py)."""

from __future__ import annotations

import itertools
import os

import pytest
from clients import Paho

from vmqpy.cluster.accept import owner


def _ids(cid: str) -> list[str]:
    """Six client ids that together land on every worker of 1, 2 and 3, in differing places."""
    out: list[str] = []
    for c in (f"{cid}-{i}" for i in itertools.count()):
        if (owner("", c, 2), owner("", c, 3)) not in {(owner("", o, 2), owner("", o, 3)) for o in out}:
            out.append(c)
        if len(out) == 6:
            return out
    raise AssertionError("unreachable")


def _receive(port: int, client_id: str, expected: list[bytes]) -> None:
    c = Paho(port, client_id, clean=False)
    _, flags, _ = c.connect()
    assert flags.session_present, client_id
    assert [m.payload for m in c.expect(len(expected))] == expected, client_id
    c.expect_none(0.2)
    c.disconnect()


def _publish_to_each(port: int, ids: list[str], payload: str) -> None:
    pub = Paho(port, f"pub-{payload}")
    pub.connect()
    for c in ids:
        pub.publish(f"part/{c}", payload, 1)
    pub.disconnect()


def _retained(port: int, cid: str) -> set[bytes]:
    c = Paho(port, f"{cid}-r")
    c.connect()
    c.subscribe(f"{cid}/r/#", 1)
    got = {m.payload for m in c.expect(6)}
    c.disconnect()
    return got


def test_sessions_offline_messages_and_retained_follow_the_worker_count(make_broker, cid):
    node = make_broker({"nr_of_workers": "1"})
    ids = _ids(cid)
    for c in ids:
        s = Paho(node.port, c, clean=False)
        s.connect()
        s.subscribe(f"part/{c}", 1)
        s.disconnect()
    pub = Paho(node.port, f"{cid}-p")
    pub.connect()
    for i in range(6):
        pub.publish(f"{cid}/r/{i}", f"kept{i}", 1, retain=True)
    pub.disconnect()
    _publish_to_each(node.port, ids, "m0")
    kept = {f"kept{i}".encode() for i in range(6)}

    node.conf["nr_of_workers"] = "3"
    node.restart()
    assert not (node.root / "data" / "meta").exists()  # the single process's partition, emptied
    _receive(node.port, ids[0], [b"m0"])
    assert _retained(node.port, cid) == kept
    _publish_to_each(node.port, ids, "m1")

    node.conf["nr_of_workers"] = "2"
    node.restart()
    assert not (node.root / "data" / "worker-2").exists()
    _receive(node.port, ids[0], [b"m1"])  # the session moved again, without what it had received
    _receive(node.port, ids[1], [b"m0", b"m1"])
    _publish_to_each(node.port, ids, "m2")

    node.conf["nr_of_workers"] = "1"
    node.restart()
    assert sorted(p.name for p in (node.root / "data").iterdir() if p.name.startswith("worker-")) == []
    assert (node.root / "data" / "nr_of_workers").read_text() == "1\n"
    _receive(node.port, ids[0], [b"m2"])
    _receive(node.port, ids[1], [b"m2"])
    for c in ids[2:]:
        _receive(node.port, c, [b"m0", b"m1", b"m2"])
    assert _retained(node.port, cid) == kept


def test_default_is_one_worker_per_core(make_broker):
    cores = len(os.sched_getaffinity(0))
    if cores == 1:
        pytest.skip("one core: the default is the single process")
    node = make_broker({}, start=False)
    del node.conf["nr_of_workers"]  # the shipped default
    node.start()
    assert len(node.rows("workers", "show")) == cores
