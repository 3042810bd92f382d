"""Per-client-class figures for /metrics (VerneMQ #1303, #1488): connections, queued and dropped messages
of the clients whose client id (or username) starts with the same class name, e.g. `sensor` for
`sensor-0042`. At most prometheus_client_class_max classes (the largest), the rest as `other`, so a
fleet of a million devices still gives a handful of series."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

LABEL = "client_class"
OTHER = "other"
FIGURES = ("client_class_connections", "client_class_queued_messages", "client_class_dropped_messages")


def class_of(name: str, separator: str) -> str:
    return name.split(separator, 1)[0] if separator and separator in name else name


def figures(node: Node) -> dict[str, list[tuple[tuple[tuple[str, str], ...], int]]]:
    """{figure: [((("client_class", name),), value), ...]}; empty when prometheus_client_class = off."""
    cfg = node.config
    by = cfg["prometheus_client_class"]
    if by == "off":
        return {}
    separator, limit = cfg["prometheus_client_class_separator"], cfg["prometheus_client_class_max"]
    totals: dict[str, list[int]] = {}
    for sid, queue in node.registry.queues.items():
        if by == "client_id":
            name = sid[1]
        else:
            name = next((s.username for s in queue.sessions if s.username), "") or "(none)"
        row = totals.setdefault(class_of(name, separator), [0, 0, 0])
        row[0] += len(queue.sessions)
        row[1] += queue.size()
        row[2] += queue.dropped
    ranked = sorted(totals, key=lambda c: (-totals[c][0] - totals[c][1], c))
    kept = {c: totals[c] for c in ranked[:limit]}
    if len(ranked) > limit:
        kept[OTHER] = [sum(totals[c][i] for c in ranked[limit:]) for i in range(3)]
    return {figure: [(((LABEL, c),), row[i]) for c, row in sorted(kept.items())]
            for i, figure in enumerate(FIGURES)}
