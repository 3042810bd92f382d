"""/status.json: every cluster node's figures, in VerneMQ's shape (vmq_status_http), for the status page.

`[{"<node>": {num_online, num_offline, msg_in, msg_out, queue_in, queue_out, queue_drop,
num_subscriptions, num_retained, version, mystatus, listeners, ...}}]`, one entry per node:
this node's from its view (summed over its workers), the others' asked over the cluster
links (`node status` on each of their workers, combined as vmq-admin does). vmqpy adds
`running`, `uptime`, `queued` (messages waiting in queues), `offline_messages` (of them,
those in the store) and `netsplits` (detected so far). A member that does not answer within
ASK_TIMEOUT is listed with `running: false` and no figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gevent

from vmqpy.admin import cluster_wide
from vmqpy.cluster.commands import combine_rows

if TYPE_CHECKING:
    from vmqpy.admin.http import OpsView
    from vmqpy.broker.node import Node


ASK_TIMEOUT = 2.0  # a node that does not answer within a refresh of the page counts as not reachable


def cluster_status(node: Node, view: OpsView) -> list[dict[str, Any]]:
    rows = {node.name: view.status()}
    members = {node.name: True}
    if node.cluster is not None:
        members = {name: node.cluster.members.running(name) for name in node.cluster.members.members()}
        rows.update(_other_nodes(node))
    listeners = [_listener(listener.describe()) for listener in node.listeners.all.values()]
    out = {}
    for name in sorted(members | rows.keys()):
        row = rows.get(name)
        out[name] = _vernemq_fields(row, members, listeners if name == node.name else []) if row else \
            {"running": False, "mystatus": []}
    return [out]


def _other_nodes(node: Node) -> dict[str, dict[str, Any]]:
    """Each other node's `node status` row, combined over its workers."""
    endpoints = cluster_wide.remote_endpoints(node)
    jobs = {name: [gevent.spawn(cluster_wide.ask, node, pid, ["node", "status"], ASK_TIMEOUT) for pid in pids]
            for name, pids in endpoints.items()}
    gevent.joinall([job for js in jobs.values() for job in js])
    rows = {}
    for name, js in jobs.items():
        answers = [job.value[2] for job in js if job.value and job.value[0] and job.value[1] == "table"]
        parts = [r for rows_of in answers for r in rows_of]
        if parts:
            rows[name] = combine_rows(parts, list(parts[0]), None)[0]
    return rows


def _listener(row: dict[str, Any]) -> dict[str, Any]:
    """As VerneMQ's status.json has a listener (`ip` where listener show says `address`)."""
    return {"ip": row["address"], **{k: row[k] for k in ("type", "status", "port", "mountpoint", "max_conns")}}


def _vernemq_fields(row: dict[str, Any], members: dict[str, bool], listeners: list) -> dict[str, Any]:
    online = row["connections"]
    return {
        "running": True, "num_online": online, "num_offline": max(0, row["queues"] - online),
        "msg_in": row["msg_in"], "msg_out": row["msg_out"], "queue_drop": row["msg_dropped"],
        "num_subscriptions": row["subscriptions"], "num_retained": row["retained"], "version": row["version"],
        "mystatus": [[{name: running} for name, running in sorted(members.items())]],
        "listeners": listeners, "uptime": row["uptime"], "queued": row.get("queued", 0),
        "offline_messages": row.get("offline_messages", 0), "netsplits": row.get("netsplits", 0),
    }
