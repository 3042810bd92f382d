"""Fan-out to offline sessions (issue #4): a message for 1,000 offline persistent
sessions is stored once, survives a crash, and leaves the disk after the last delivery.

Figures come from the store's own counters (`vmq-admin store show`).
"""

from __future__ import annotations

import os

import bulk
from broker import wait_until

SESSIONS = 1000
MESSAGES = 10
PAYLOAD = 16 * 1024


def test_fan_out_stored_once_and_reclaimed(make_broker, cid):
    node = make_broker()
    ids = [f"{cid}-{i}" for i in range(SESSIONS)]
    bulk.persistent_sessions(node.port, ids, "fan/t", 1)
    node.admin("store", "compact")
    empty_bytes = bulk.store_stats(node)["disk_bytes"]

    payload = os.urandom(PAYLOAD)  # incompressible: disk bytes show what is stored
    bulk.publish(node.port, cid + "p", "fan/t", MESSAGES, 1, payload=payload)
    stats = bulk.store_stats(node)
    assert (stats["messages"], stats["index_entries"]) == (MESSAGES, MESSAGES * SESSIONS)
    assert node.admin("store", "compact") == (True, "ok")
    stored_bytes = bulk.store_stats(node)["disk_bytes"]
    # once per message, not once per session (that would be 160 MB)
    assert MESSAGES * PAYLOAD < stored_bytes - empty_bytes < 4 * MESSAGES * PAYLOAD, stored_bytes

    node.kill()
    node.start()
    stats = bulk.store_stats(node)
    assert (stats["messages"], stats["index_entries"]) == (MESSAGES, MESSAGES * SESSIONS)

    received = bulk.reconnect_and_receive(node.port, ids[:SESSIONS // 2], MESSAGES)
    assert all(r == [payload] * MESSAGES for r in received)
    wait_until(lambda: bulk.store_stats(node)["index_entries"] == MESSAGES * SESSIONS // 2)
    assert bulk.store_stats(node)["messages"] == MESSAGES  # still referenced by the other half

    received = bulk.reconnect_and_receive(node.port, ids[SESSIONS // 2:], MESSAGES)
    assert all(r == [payload] * MESSAGES for r in received)
    wait_until(lambda: bulk.store_stats(node)["index_entries"] == 0, what="store to drain")
    assert bulk.store_stats(node)["messages"] == 0
    assert node.admin("store", "compact") == (True, "ok")
    reclaimed = bulk.store_stats(node)["disk_bytes"]
    print(f"\nfan-out {MESSAGES} x {PAYLOAD} B to {SESSIONS} offline sessions: store "
          f"{empty_bytes} B empty, {stored_bytes} B holding them, {reclaimed} B after delivery + compact")
    assert reclaimed < empty_bytes + PAYLOAD
