"""VerneMQ's broker-core metrics (metrics.json, from vmq_metrics.erl) against a node's /metrics text."""

from __future__ import annotations

import json
import os

from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
NAMESPACE = "vernemq_"  # prometheus_namespace's default, as VerneMQ 2.x

# Erlang VM figures with no counterpart in a Python process (docs/migrating-from-vernemq.md)
NOT_EXPORTED = frozenset({
    "system_exact_reductions", "system_reductions", "system_process_count", "system_io_in", "system_io_out",
    "vm_memory_processes", "vm_memory_processes_used", "vm_memory_system", "vm_memory_atom",
    "vm_memory_atom_used", "vm_memory_binary", "vm_memory_code", "vm_memory_ets", "router_memory",
    "retain_memory",
})


def vernemq_metrics() -> list[dict]:
    with open(os.path.join(HERE, "metrics.json")) as f:
        return json.load(f)["metrics"]


def families(text: str) -> dict[str, str]:
    """name -> type of every metric family in a Prometheus text exposition."""
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def matching(text: str, namespace: str = NAMESPACE) -> list[str]:
    """VerneMQ's metrics that `text` has under their name after `namespace`, with VerneMQ's type."""
    found = families(text)
    return [m["name"] for m in vernemq_metrics() if found.get(namespace + m["name"]) == m["type"]]
