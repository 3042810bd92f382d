#!/usr/bin/env python3
"""How much of VerneMQ's config vmqpy covers: every key of keys.json as honoured, no-op, pending or missing.

    .venv/bin/python test/vernemq_keys/coverage.py [--list missing|pending|no-op|honoured]
    .venv/bin/python test/vernemq_keys/coverage.py --metrics   # starts a node, scrapes its /metrics

honoured: declared in vmqpy/config_schema.py (and not a no-op), so vmqpy does what the key says;
no-op: accepted, documented, logged as ignored (vmqpy/config_ignored.py);
pending: work another change owns (pending.py says which);
missing: vmqpy refuses a config that sets it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pending import PENDING, PENDING_APPS  # noqa: E402

from vmqpy.config_schema import Key, lookup  # noqa: E402


def table() -> list[dict]:
    with open(os.path.join(HERE, "keys.json")) as f:
        return json.load(f)["keys"]


def sample_name(key: str) -> str:
    """A key a vernemq.conf could hold for the pattern `key` ($name becomes `default`)."""
    return re.sub(r"\$\w+", "default", key)


def vmqpy_key(key: str) -> Key | None:
    """vmqpy's declaration of VerneMQ's `key` (None: vmqpy refuses it)."""
    found = lookup(sample_name(key))
    if found and "$" not in key and re.fullmatch(r"listener\.\w+\.\$name", found[0].name):
        return None  # vmqpy would read VerneMQ's option (listener.tcp.buffer_sizes) as a listener's address
    return found[0] if found else None


def classify(row: dict) -> str:
    found = vmqpy_key(row["key"])
    if found:
        return "no-op" if found.ignored else "honoured"
    if row["key"] in PENDING or row["app"] in PENDING_APPS:
        return "pending"
    return "missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", choices=("missing", "pending", "no-op", "honoured"))
    parser.add_argument("--metrics", action="store_true", help="VerneMQ's metric names a node exports")
    args = parser.parse_args()
    if args.metrics:
        return print_metrics()
    rows = table()
    classes = {row["key"]: classify(row) for row in rows}
    if args.list:
        for row in rows:
            if classes[row["key"]] == args.list:
                owner = PENDING.get(row["key"]) or PENDING_APPS.get(row["app"], "")
                print(f"{row['app']:22} {row['key']} {owner}".rstrip())
        return
    total = collections.Counter(classes.values())
    print(f"VerneMQ config keys: {len(rows)} ({', '.join(f'{total[c]} {c}' for c in CLASSES)})")
    per_app: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        per_app[row["app"]][classes[row["key"]]] += 1
    for app, counts in per_app.items():
        print(f"  {app:22} {sum(counts.values()):4}  " + "  ".join(f"{counts[c]:3} {c}" for c in CLASSES))


CLASSES = ("honoured", "no-op", "pending", "missing")


def print_metrics() -> None:
    """Start a node (default config, an HTTP listener), scrape /metrics, count VerneMQ's names in it."""
    import tempfile
    import urllib.request

    sys.path.insert(0, os.path.dirname(HERE))
    from broker import Broker, free_port
    from metric_names import NAMESPACE, matching, vernemq_metrics

    port = free_port()
    with tempfile.TemporaryDirectory() as root:
        node = Broker(root, {"listener.http.default": f"127.0.0.1:{port}"}).start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                text = reply.read().decode()
        finally:
            node.stop()
            node.cleanup()
    names = [m["name"] for m in vernemq_metrics()]
    found = set(matching(text))
    print(f"VerneMQ's metrics under {NAMESPACE}<name> with VerneMQ's type: {len(found)} of {len(names)}")
    print("  not exported: " + " ".join(n for n in names if n not in found))

if __name__ == "__main__":
    main()
