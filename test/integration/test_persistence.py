"""Persistence across crashes and restarts (issue #4): offline messages, retained
messages, subscriptions, session expiry, graceful stop, start-up, damaged data dirs.

Every node is a real subprocess; `kill()` is SIGKILL (the crash), `stop()` SIGTERM.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import bulk
import pytest
from broker import REPO, wait_until
from clients import Paho, Raw

from vmqpy.mqtt import packets as P


def seq(n: int) -> list[bytes]:
    return [b"%d" % i for i in range(n)]


def resume(node, client_id: str) -> Raw:
    """Reconnect a persistent session and check the broker still had it."""
    c = Raw(node.port)
    ack = c.connect(client_id, clean=False)
    assert ack.reason_code == 0 and ack.session_present
    return c


def wait_store_empty(node) -> None:
    wait_until(lambda: bulk.store_stats(node)["index_entries"] == 0, what="store to drain")
    assert bulk.store_stats(node)["messages"] == 0


# -- crash: SIGKILL after the publisher got its acks ----------------------------
@pytest.mark.parametrize("qos,sync,n", [
    pytest.param(1, "off", 10_000, id="qos1"),
    pytest.param(2, "off", 10_000, id="qos2"),
    pytest.param(1, "on", 2_000, id="qos1-sync-on"),
])
def test_sigkill_loses_no_acknowledged_message(make_broker, cid, qos, sync, n):
    node = make_broker({"max_offline_messages": "-1", "message_store.sync": sync})
    bulk.persistent_sessions(node.port, [cid], "crash/t", qos)
    bulk.publish(node.port, cid + "p", "crash/t", n, qos)
    assert bulk.store_stats(node)["index_entries"] == n

    node.kill()
    node.start()
    assert bulk.store_stats(node)["messages"] == n
    sub = resume(node, cid)
    assert bulk.receive(sub, n) == seq(n)  # all of them, in order, once
    wait_store_empty(node)
    sub.close()


def test_retained_messages_and_subscriptions_survive_sigkill(make_broker, cid):
    node = make_broker()
    bulk.persistent_sessions(node.port, [cid], "keep/#", 1)
    pub = Paho(node.port, cid + "p")
    pub.connect()
    pub.publish("keep/a", "A", 1, retain=True)
    pub.publish("keep/b", "B", 1, retain=True)
    pub.publish("keep/b", "", 1, retain=True)  # cleared before the crash
    pub.disconnect()

    node.kill()
    node.start()
    sub = resume(node, cid)  # no SUBSCRIBE after the restart
    assert bulk.receive(sub, 3) == [b"A", b"B", b""]
    bulk.publish(node.port, cid + "p", "keep/new", 1, 1)
    assert bulk.receive(sub, 1) == [b"0"]  # routed by the restored subscription

    fresh = Paho(node.port, cid + "f")
    fresh.connect()
    fresh.subscribe("keep/#", 1)
    bulk.publish(node.port, cid + "p", "keep/marker", 1, 1)
    got = fresh.expect(2)  # retained messages come before anything published after SUBACK
    assert [(m.topic, m.payload, m.retain) for m in got] == [("keep/a", b"A", True),
                                                             ("keep/marker", b"0", False)]
    fresh.disconnect()
    sub.close()


# -- graceful stop ---------------------------------------------------------------
def test_sigterm_keeps_unacked_messages_held_in_memory(make_broker, cid):
    node = make_broker()
    sub = Raw(node.port)
    sub.connect(cid, clean=False)
    sub.send(P.Subscribe(1, [("mem/t", P.SubOpts(1))]))
    assert sub.recv().type == P.SUBACK
    bulk.publish(node.port, cid + "p", "mem/t", 100, 1)
    assert sub.recv().payload == b"0"  # online: delivered from memory, never acked
    assert bulk.store_stats(node)["index_entries"] == 0

    assert node.stop() == 0
    sub.close()
    node.start()
    assert bulk.store_stats(node)["index_entries"] == 100
    back = resume(node, cid)
    assert bulk.receive(back, 100) == seq(100)
    wait_store_empty(node)
    back.close()


# -- persistent_client_expiration --------------------------------------------------
def test_expired_offline_session_is_removed_from_disk(make_broker, cid):
    node = make_broker({"persistent_client_expiration": "1s"})
    bulk.persistent_sessions(node.port, [cid], "exp/t", 1)
    bulk.publish(node.port, cid + "p", "exp/t", 10, 1)
    wait_store_empty(node)
    assert bulk.store_stats(node)["pending_writes"] == 0  # the removal reached RocksDB

    node.kill()
    node.start()
    assert bulk.store_stats(node)["messages"] == 0
    back = Raw(node.port)
    assert not back.connect(cid, clean=False).session_present
    back.close()


def test_session_that_expired_while_node_was_down_is_removed_at_start(make_broker, cid):
    expiration = 2.0
    node = make_broker({"persistent_client_expiration": f"{expiration:.0f}s"})
    offline_at = time.time()
    bulk.persistent_sessions(node.port, [cid], "down/t", 1)
    bulk.publish(node.port, cid + "p", "down/t", 10, 1)
    assert bulk.store_stats(node)["index_entries"] == 10  # not expired yet
    node.kill()
    # The expiry is wall-clock time since the session went offline: let it pass while down.
    time.sleep(max(0.0, offline_at + expiration + 0.2 - time.time()))
    node.start()
    wait_store_empty(node)
    back = Raw(node.port)
    assert not back.connect(cid, clean=False).session_present
    back.close()


def test_session_online_at_crash_expires_after_restart(make_broker, cid):
    node = make_broker({"persistent_client_expiration": "1s", "max_offline_messages": "-1"})
    sub = Raw(node.port)
    sub.connect(cid, clean=False)
    sub.send(P.Subscribe(1, [("online/t", P.SubOpts(1))]))
    assert sub.recv().type == P.SUBACK
    node.kill()  # the session never went offline before the crash
    sub.close()
    node.start()
    bulk.publish(node.port, cid + "p", "online/t", 5, 1)
    wait_store_empty(node)  # it expires 1s after the restart, messages included


# -- start-up with a large store -----------------------------------------------------
def test_start_with_100k_stored_entries(make_broker, cid):
    sessions, per_session = 1000, 100
    node = make_broker({"max_offline_messages": "-1"}, start=False)
    t0 = time.monotonic()
    node.start()
    empty_start = time.monotonic() - t0
    ids = [f"{cid}-{i}" for i in range(sessions)]
    bulk.persistent_sessions(node.port, ids, "big/t", 1)
    bulk.publish(node.port, cid + "p", "big/t", per_session, 1)
    stats = bulk.store_stats(node)
    assert (stats["messages"], stats["index_entries"]) == (per_session, sessions * per_session)

    node.kill()
    t0 = time.monotonic()
    node.start()
    to_ping = time.monotonic() - t0
    first = Raw(node.port)
    ack = first.connect(ids[0], clean=False)
    to_connack = time.monotonic() - t0
    print(f"\nstart-up, {sessions} offline sessions, {sessions * per_session} stored entries: "
          f"ping after {to_ping:.2f}s, first CONNACK after {to_connack:.2f}s (empty store: {empty_start:.2f}s)")
    assert ack.session_present
    assert bulk.receive(first, per_session) == seq(per_session)
    assert bulk.reconnect_and_receive(node.port, ids[-1:], per_session) == [seq(per_session)]
    wait_until(lambda: bulk.store_stats(node)["index_entries"] == (sessions - 2) * per_session)
    assert bulk.store_stats(node)["messages"] == per_session
    first.close()


# -- damaged data directories ------------------------------------------------------
def _damage_current(d):
    (d / "CURRENT").write_text("garbage\n")


def _damage_manifest(d):
    for f in d.glob("MANIFEST-*"):
        f.unlink()


def _damage_replace_with_file(d):
    shutil.rmtree(d)
    d.write_text("not a directory")


def _damage_foreign(d):
    (d / "CURRENT").unlink()


def _data_files(d) -> dict[str, int] | None:
    """Name -> size of the files RocksDB keeps data in (the info LOG rotates on every open)."""
    if not d.is_dir():
        return None
    return {f.name: f.stat().st_size for f in d.iterdir()
            if f.suffix in (".sst", ".log") or f.name.startswith("MANIFEST-") or f.name == "CURRENT"}


DAMAGES = {"corrupt CURRENT": _damage_current, "MANIFEST missing": _damage_manifest,
           "path is a file": _damage_replace_with_file, "no CURRENT, files left": _damage_foreign}


@pytest.mark.parametrize("store", ["msgstore", "meta"])
def test_damaged_data_dir_stops_the_node_naming_the_path(make_broker, cid, tmp_path, store):
    node = make_broker()
    bulk.persistent_sessions(node.port, [cid], "dmg/t", 1)
    bulk.publish(node.port, cid + "p", "dmg/t", 3, 1)
    assert node.stop() == 0
    data = node.root / "data"
    pristine = tmp_path / "pristine"
    shutil.copytree(data, pristine)
    for what, damage in DAMAGES.items():
        shutil.rmtree(data)
        shutil.copytree(pristine, data)
        damage(data / store)
        left = _data_files(data / store)
        run = subprocess.run([sys.executable, "-m", "vmqpy.scripts.vernemq", "--config", str(node.conf_path),
                              "console"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert run.returncode == 1, f"{what}: node started:\n{run.stderr}"
        assert str(data / store) in run.stderr and "failed to start" in run.stderr, f"{what}: {run.stderr}"
        assert _data_files(data / store) == left, f"{what}: data files changed"
    # The intact directory still starts, with everything in it.
    shutil.rmtree(data)
    shutil.copytree(pristine, data)
    node.start()
    sub = resume(node, cid)
    assert bulk.receive(sub, 3) == seq(3)
    sub.close()
