"""The RocksDB stores: offline messages (ref-counted) and metadata, on real RocksDB in tmp dirs."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vmqpy.broker.message import Msg
from vmqpy.store import metadata
from vmqpy.store.messages import MessageStore, StoreError
from vmqpy.store.metadata import MetadataStore, pack, unpack
from vmqpy.store.rocks import RocksDB

REPO = Path(__file__).resolve().parents[2]


def msg(i: int, payload: bytes = b"", **kw) -> Msg:
    return Msg(f"t/{i}", payload or b"p%d" % i, 1, **kw)


def topics(store: MessageStore, queue: str) -> list[str]:
    return [m.topic for _, m, _ in store.read(queue)]


def check_consistent(path: str) -> dict:
    """Recount bodies, refcounts and index entries straight from RocksDB and compare to counters."""
    db = RocksDB(path)
    try:
        bodies = {k[1:] for k, _ in db.scan(b"m")}
        refcounts = {k[1:]: int.from_bytes(v, "big") for k, v in db.scan(b"c")}
        uses: dict[bytes, int] = {}
        for _, v in db.scan(b"q"):
            uses[v[1:]] = uses.get(v[1:], 0) + 1
        assert set(uses) == bodies == set(refcounts)
        assert uses == refcounts
        counters = db.get(b"s")
        n_bodies, n_entries = (int.from_bytes(counters[:8], "big"), int.from_bytes(counters[8:], "big")) \
            if counters else (0, 0)
        assert (n_bodies, n_entries) == (len(bodies), sum(uses.values()))
        return {"messages": n_bodies, "index_entries": n_entries}
    finally:
        db.close()


# ---------------------------------------------------------------- message store

def test_append_read_order_and_staging(tmp_path):
    s = MessageStore(str(tmp_path / "m"))
    for i in range(5):
        s.append("q", msg(i), 1)
    assert s.pending()
    assert topics(s, "q") == [f"t/{i}" for i in range(5)]  # staged entries visible
    s.flush()
    assert not s.pending()
    s.flush()  # idle flush is a no-op
    for i in range(5, 8):
        s.append("q", msg(i), 2)
    assert topics(s, "q") == [f"t/{i}" for i in range(8)]  # disk then staged
    rows = s.read("q")
    assert [seq for seq, _, _ in rows] == list(range(8))
    assert [flags for _, _, flags in rows] == [1] * 5 + [2] * 3
    assert [m.topic for _, m, _ in s.read("q", limit=6)] == [f"t/{i}" for i in range(6)]
    assert s.read("q", limit=0) == []
    # paging past entries still awaiting their ack, across the disk/staged boundary
    assert [m.topic for _, m, _ in s.read("q", 2, after=3)] == ["t/4", "t/5"]
    assert [m.topic for _, m, _ in s.read("q", after=5)] == ["t/6", "t/7"]
    assert s.read("q", after=7) == []
    assert s.count("q") == 8 and s.count("other") == 0
    seq, first, _ = s.read("q", 1)[0]
    s.remove("q", seq + 1, first.ref)  # wrong seq for this ref: nothing happens
    s.remove("q", seq, first.ref)
    s.remove("q", seq, first.ref)  # a repeated ack changes nothing
    assert topics(s, "q")[0] == "t/1" and s.count("q") == 7
    s.close()


def test_msg_fields_round_trip(tmp_path):
    props = {"correlation_data": b"\x00\xffid", "response_topic": "r/1",
             "user_property": [("k", "v"), ("k", "w")], "payload_format_indicator": 1}
    m = Msg("a/ü", b"\x00" * 300, qos=2, retain=True, properties=props, mountpoint="mp",
            expiry=1700000000.123456, sender=("mp", "pub-1"))
    s = MessageStore(str(tmp_path / "m"))
    s.append("q", m, 1)
    s.close()
    s = MessageStore(str(tmp_path / "m"))
    [(_, got, flags)] = s.read("q")
    assert flags == 1
    for f in ("ref", "topic", "payload", "qos", "retain", "properties", "mountpoint", "expiry", "sender"):
        assert getattr(got, f) == getattr(m, f), f
    assert isinstance(got.sender, tuple) and got.frames is None
    s.close()


def test_fan_out_stored_once_and_deleted_with_last_reference(tmp_path):
    s = MessageStore(str(tmp_path / "m"))
    m = msg(1, b"x" * 1024)
    queues = [f"client-{i}" for i in range(1000)]
    for q in queues:
        s.append(q, m, 1)
    s.flush()
    assert s.stats()["messages"] == 1 and s.stats()["index_entries"] == 1000
    assert s.queue_keys() == sorted(queues)
    for q in queues[:-1]:
        s.remove(q, 0, m.ref)
    s.flush()
    assert s.stats()["messages"] == 1 and topics(s, queues[-1]) == ["t/1"]
    s.remove(queues[-1], 0, m.ref)
    s.flush()
    assert s.stats()["messages"] == 0 and s.stats()["index_entries"] == 0
    assert s.queue_keys() == []
    s.close()
    assert check_consistent(str(tmp_path / "m")) == {"messages": 0, "index_entries": 0}


def test_same_ref_twice_in_one_queue_and_delete_queue(tmp_path):
    s = MessageStore(str(tmp_path / "m"))
    a, b = msg(1), msg(2)
    s.append("q", a, 1)
    s.append("q", b, 1)
    s.append("q", a, 2)  # overlapping subscriptions deliver twice
    s.append("other", a, 1)
    s.flush()
    s.remove("q", 0, a.ref)
    assert [(seq, m.topic, flags) for seq, m, flags in s.read("q")] == [(1, "t/2", 1), (2, "t/1", 2)]
    s.delete_queue("q")
    assert s.read("q") == [] and s.count("q") == 0 and s.queue_keys() == ["other"]
    assert s.stats()["messages"] == 1 and s.stats()["index_entries"] == 1
    s.append("q", b, 1)  # a deleted queue can be refilled
    assert topics(s, "q") == ["t/2"]
    s.close()
    assert check_consistent(str(tmp_path / "m")) == {"messages": 2, "index_entries": 2}


def test_restart_keeps_order_and_seq_continues(tmp_path):
    path = str(tmp_path / "m")
    s = MessageStore(path)
    for i in range(10):
        s.append("q", msg(i), 1)
    s.flush()
    for seq, m, _ in s.read("q", 3):
        s.remove("q", seq, m.ref)
    s.close()
    s = MessageStore(path)
    assert topics(s, "q") == [f"t/{i}" for i in range(3, 10)]
    assert s.count("q") == 7 and s.stats()["messages"] == 7
    for i in range(10, 13):
        s.append("q", msg(i), 1)
    assert topics(s, "q") == [f"t/{i}" for i in range(3, 13)]
    assert [seq for seq, _, _ in s.read("q")] == list(range(3, 13))
    s.close()
    s = MessageStore(path)
    assert topics(s, "q") == [f"t/{i}" for i in range(3, 13)]
    s.close()


def test_compact_reclaims_disk(tmp_path):
    s = MessageStore(str(tmp_path / "m"))
    msgs = [msg(i, os.urandom(4096)) for i in range(2000)]  # random: compression cannot hide it
    for m in msgs:
        s.append("q", m, 1)
    s.compact()
    full = s.stats()["disk_bytes"]
    assert full > 2000 * 4096
    for seq, m in enumerate(msgs):
        s.remove("q", seq, m.ref)
    s.compact()
    assert s.stats()["disk_bytes"] < full / 20
    s.close()


_CRASH_CHILD = textwrap.dedent("""
    import os, sys
    from vmqpy.broker.message import Msg
    from vmqpy.store.messages import MessageStore
    s = MessageStore(sys.argv[1])
    for i in range(200):
        m = Msg("t/%d" % i, b"p" * 100, 1)
        for q in ("a", "b", "c"):
            s.append(q, m, 1)
        if i % 3 == 0:
            s.remove("c", i, m.ref)
        if i % 10 == 9:
            s.flush()
    s.append("a", Msg("unflushed", b"", 1), 1)
    os._exit(0) if sys.argv[2] == "exit" else os.kill(os.getpid(), 9)
""")


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_crash_loses_nothing_flushed(tmp_path, how):
    path = str(tmp_path / "m")
    subprocess.run([sys.executable, "-c", _CRASH_CHILD, path, how], cwd=REPO, check=False, timeout=60)
    s = MessageStore(path)
    assert topics(s, "a") == topics(s, "b") == [f"t/{i}" for i in range(200)]
    assert topics(s, "c") == [f"t/{i}" for i in range(200) if i % 3]
    s.close()
    assert check_consistent(path) == {"messages": 200, "index_entries": 200 * 3 - 67}


_CHURN_CHILD = textwrap.dedent("""
    import sys
    from vmqpy.broker.message import Msg
    from vmqpy.store.messages import MessageStore
    s = MessageStore(sys.argv[1])
    live = []
    i = 0
    print("ready", flush=True)
    while True:
        m = Msg("t/%d" % i, b"p" * 500, 1)
        for q in ("a", "b", "c", "d"):
            s.append(q, m, 1)
        live.append((i, m))
        if len(live) > 50:
            seq, old = live.pop(0)
            for q in ("a", "b", "c", "d"):
                s.remove(q, seq, old.ref)
        s.flush()
        i += 1
""")


def test_refcounts_consistent_after_sigkill_at_random_point(tmp_path):
    path = str(tmp_path / "m")
    child = subprocess.Popen([sys.executable, "-c", _CHURN_CHILD, path], cwd=REPO, stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"ready\n"
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    counts = check_consistent(path)
    assert counts["messages"] == 50 and counts["index_entries"] == 50 * 4
    s = MessageStore(path)
    order = [int(m.topic[2:]) for _, m, _ in s.read("a")]
    assert order == sorted(order) and topics(s, "a") == topics(s, "d")
    s.close()


# ---------------------------------------------------------------- refusing bad data dirs

def _damage_current(path: Path) -> None:
    (path / "CURRENT").write_bytes(b"\x00garbage\n")


def _damage_manifest(path: Path) -> None:
    for f in path.glob("MANIFEST-*"):
        f.write_bytes(os.urandom(f.stat().st_size or 64))


@pytest.mark.parametrize("damage", [_damage_current, _damage_manifest])
def test_corrupt_directory_raises(tmp_path, damage):
    path = tmp_path / "m"
    s = MessageStore(str(path))
    s.append("q", msg(1), 1)
    s.close()
    damage(path)
    with pytest.raises(StoreError, match=str(path)):
        MessageStore(str(path))


def test_file_where_directory_should_be(tmp_path):
    path = tmp_path / "m"
    path.write_text("not a database")
    with pytest.raises(StoreError, match=f"{path}.*not a directory"):
        MessageStore(str(path))


def test_foreign_directory_is_not_replaced_by_an_empty_store(tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    (path / "000009.sst").write_bytes(b"data")  # e.g. CURRENT lost
    with pytest.raises(StoreError, match="no CURRENT"):
        MessageStore(str(path))


def test_locked_directory_raises(tmp_path):
    path = str(tmp_path / "m")
    s = MessageStore(path)
    with pytest.raises(StoreError, match=path):
        MessageStore(path)
    s.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_directory_raises(tmp_path):
    path = tmp_path / "m"
    MessageStore(str(path)).close()
    path.chmod(0)
    try:
        with pytest.raises(StoreError, match=str(path)):
            MessageStore(str(path))
    finally:
        path.chmod(0o700)


# ---------------------------------------------------------------- metadata

@metadata.register
@dataclasses.dataclass
class Sess:
    client_id: str
    clean: bool
    opts: dict


def test_codec_round_trips():
    values = [None, True, False, 0, -1, 255, -(2 ** 70), 2 ** 64, 1.5, "", "ü" * 300, b"", b"\x00" * 70000,
              (), ("mp", "c1"), [1, (2, b"3")], {("mp", "t"): {"a/#": {"qos": 1, "nl": False}}},
              {b"k": [None]}, Sess("c", True, {"x": (1,)})]
    for v in values:
        got = unpack(pack(v))
        assert got == v and type(got) is type(v)
    assert type(unpack(pack([(1, 2)]))[0]) is tuple


def test_codec_refuses_unknown_and_garbage():
    @dataclasses.dataclass
    class Unregistered:
        a: int

    with pytest.raises(TypeError):
        pack(Unregistered(1))
    with pytest.raises(TypeError):
        pack({1, 2})
    for bad in (b"", b"\x09N", pack("abc")[:-1], pack(1) + b"N", b"\x01Z"):
        with pytest.raises(ValueError):
            unpack(bad)
    forged = pack(Sess("c", True, {})).replace(b"Sess", b"Xess")
    with pytest.raises(ValueError, match="not registered"):
        unpack(forged)


@pytest.mark.parametrize("persistent", [False, True])
def test_metadata_api(tmp_path, persistent):
    store = MetadataStore(str(tmp_path / "meta") if persistent else None)
    seen = []
    store.subscribe("subscriptions", lambda k, old, new: seen.append((k, old, new)))
    key = ("", "client-1")
    store.put("subscriptions", key, {"a/+": {"qos": 1}})
    store.put("subscriptions", key, {"a/+": {"qos": 2}})
    store.put("retain", ("", "a/b"), {"payload": b"\x00\x01", "qos": 1})
    assert store.get("subscriptions", key) == {"a/+": {"qos": 2}}
    assert store.get("subscriptions", ("", "nobody")) is None and store.get("nothing", 1) is None
    assert list(store.fold("retain")) == [(("", "a/b"), {"payload": b"\x00\x01", "qos": 1})]
    store.delete("subscriptions", key)
    store.delete("subscriptions", key)  # absent: no change, no callback
    assert store.get("subscriptions", key) is None and list(store.fold("subscriptions")) == []
    assert seen == [(key, None, {"a/+": {"qos": 1}}), (key, {"a/+": {"qos": 1}}, {"a/+": {"qos": 2}}),
                    (key, {"a/+": {"qos": 2}}, None)]
    with pytest.raises(TypeError):
        store.put("sessions", ["unhashable"], 1)
    with pytest.raises(TypeError):
        store.put("sessions", "k", object())
    assert list(store.fold("sessions")) == []
    store.close()


def test_metadata_persists_across_reopen(tmp_path):
    path = str(tmp_path / "meta")
    store = MetadataStore(path)
    store.put("sessions", ("mp", "c"), Sess("c", False, {"expiry": 3600}))
    store.put("retain", ("", "x"), {"payload": b"\xff", "properties": {"correlation_data": b"\x01"}})
    store.put("retain", ("", "gone"), {"payload": b""})
    store.delete("retain", ("", "gone"))
    for i in range(100):
        store.put("subscriptions", ("", f"c{i}"), {"t/#": {"qos": i % 3}})
    store.close()
    store = MetadataStore(path)
    assert store.get("sessions", ("mp", "c")) == Sess("c", False, {"expiry": 3600})
    assert dict(store.fold("retain")) == {("", "x"): {"payload": b"\xff",
                                                      "properties": {"correlation_data": b"\x01"}}}
    assert len(list(store.fold("subscriptions"))) == 100
    store.close()


def test_failing_subscriber_does_not_undo_the_change():
    store = MetadataStore(None)

    def broken(key, old, new):
        raise RuntimeError("boom")

    store.subscribe("p", broken)
    store.put("p", 1, "v")
    assert store.get("p", 1) == "v"


def test_metadata_corrupt_directory_raises(tmp_path):
    path = tmp_path / "meta"
    MetadataStore(str(path)).close()
    _damage_current(path)
    with pytest.raises(StoreError, match=str(path)):
        MetadataStore(str(path))
