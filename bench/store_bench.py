"""Offline message store throughput, batched the way the broker flushes (one flush per loop turn).

Prints one JSON line per configuration: payload bytes, sync, messages per
flush, fan-out (queues per message), and messages/s for write (append+flush),
read (whole queues decoded to Msg) and drain (remove+flush: the ack path).
Fan-out rates count queue deliveries for read and drain, published messages for write.

    .venv/bin/python bench/store_bench.py [--messages N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from vmqpy.broker.message import Msg
from vmqpy.store.messages import MessageStore


def run(root: str, payload_size: int, sync: bool, batch: int, fanout: int, messages: int) -> dict:
    store = MessageStore(tempfile.mkdtemp(dir=root), sync=sync)
    payload = os.urandom(payload_size)  # incompressible, like most device payloads
    msgs = [Msg(f"bench/{i % 100}", payload, 1, sender=("", "pub")) for i in range(messages)]
    queues = [f"client-{q}" for q in range(max(10, fanout))]

    t = time.perf_counter()
    for i, m in enumerate(msgs):
        for k in range(fanout):
            store.append(queues[(i + k) % len(queues)], m, 1)
        if (i + 1) % batch == 0:
            store.flush()
    store.flush()
    write = time.perf_counter() - t
    stats = store.stats()

    t = time.perf_counter()
    stored = [(q, seq, m) for q in queues for seq, m, _ in store.read(q)]
    read = time.perf_counter() - t
    assert len(stored) == messages * fanout

    t = time.perf_counter()
    for i, (q, seq, m) in enumerate(stored, 1):
        store.remove(q, seq, m.ref)
        if i % batch == 0:
            store.flush()
    store.flush()
    drain = time.perf_counter() - t
    assert store.stats()["messages"] == 0
    store.close()
    deliveries = messages * fanout
    return {"payload": payload_size, "sync": sync, "msgs_per_flush": batch, "fanout": fanout,
            "messages": messages, "write_msg_s": round(messages / write),
            "read_msg_s": round(deliveries / read), "drain_msg_s": round(deliveries / drain),
            "disk_bytes_full": stats["disk_bytes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000, help="messages per configuration")
    ap.add_argument("--dir", default=None, help="where the databases go (default: system temp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        for sync in (False, True):
            for payload in (64, 1024):
                for batch in (1, 10, 100):
                    # fsync per flush is ~ms: cap the flush count so a run takes seconds
                    n = min(args.messages, 2000 * batch) if sync else args.messages
                    print(json.dumps(run(root, payload, sync, batch, 1, n)), flush=True)
        for sync in (False, True):
            print(json.dumps(run(root, 1024, sync, 10, 100, args.messages // 100)), flush=True)


if __name__ == "__main__":
    main()
