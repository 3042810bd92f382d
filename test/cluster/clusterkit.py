"""Helpers of the cluster tests: what a node's admin commands say."""

from __future__ import annotations

from broker import free_port


def same_port(hs) -> int:
    """One cluster port for every host: a node finds another at NAME@HOST and its own port number, as
    VerneMQ nodes do. Namespaces have every port free; loopback hosts share the machine's ports."""
    return 44053 if hs.netns else free_port()


def running(node) -> dict[str, str]:
    """`cluster show` as {node: "true" | "false"}."""
    return {row["Node"]: row["Running"] for row in node.rows("cluster", "show")}


def metrics(node) -> dict[str, float]:
    ok, out = node.admin("metrics", "show")
    assert ok, out
    return {k.split(".", 1)[-1]: float(v) for k, _, v in (line.partition(" = ") for line in out.splitlines()) if v}


def persistent_sessions(node, ids, topic) -> None:
    """A persistent session per client id on `node`, each subscribed to topic(id) at QoS 1, then offline."""
    for client_id in ids:
        s = node.client(client_id, clean=False)
        s.connect()
        s.subscribe(topic(client_id), 1)
        s.disconnect()
