"""vmq-admin cluster show|join|leave, as VerneMQ's vmq_server_cli (docs/cluster.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gevent

from vmqpy.admin.commands import Args, Result, Table, _usage_error, command

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

COLUMNS = ["Node", "Running"]
HELD = ["Sessions", "Offline messages"]


def _membership(node: Node):
    return node.cluster.members if node.cluster is not None else None


@command("cluster", "show")
def cluster_show(node: Node, args: Args) -> Result:
    """Prints cluster information: every member node and whether it is running.

  cluster show [--sessions]

  --sessions adds the persistent sessions and offline messages each node
  keeps on its disk, as it last reported them (every second): what a leave
  of that node while it is down loses."""
    members = _membership(node)
    if members is None:
        return True, Table([{"Node": node.name, "Running": True}], COLUMNS)
    rows = [{"Node": name, "Running": members.running(name)} for name in sorted(members.members())]
    if "sessions" not in args.bare:
        return True, Table(rows, COLUMNS)
    for row in rows:
        row["Sessions"], row["Offline messages"], _ = node.cluster.sessions.held_by(row["Node"])
    return True, Table(rows, COLUMNS + HELD)


@command("cluster", "join")
def cluster_join(node: Node, args: Args) -> Result:
    """Join a cluster. The discovery node will be used to find out about the nodes in the cluster.

  cluster join discovery-node=<Node>"""
    if not args.get("discovery-node"):
        return _usage_error("cluster join discovery-node=<Node>")
    members = _membership(node)
    if members is None:
        return False, "Error: this node has no cluster listener (listener.vmq.clustering)"
    why = members.join(args["discovery-node"])
    return (False, f"Error: {why}") if why else (True, "Done")


@command("cluster", "leave")
def cluster_leave(node: Node, args: Args) -> Result:
    """Graceful cluster-leave of a cluster node.

  cluster leave node=<Node> [-k | --kill_sessions] [-i <IntervalInSecs>] [-t <TimeoutInSecs>]

  If <Node> is this node, its MQTT listeners are stopped first, so it takes
  no new connections. With --kill_sessions its open connections are closed
  too, and the queues of its persistent sessions (offline messages included)
  move to the other nodes; -i (--summary-interval, 5) logs the progress every
  so many seconds, -t (--timeout, 60) stops the migration after so many (the
  command can be issued again). The node is then removed from the cluster on
  every member. A node that is down (gone for good) is removed from a member:
  its persistent sessions are re-created on the nodes that stay (with their
  offline messages if offline_message_replica kept copies), within -t, and
  the answer says how many, and how many offline messages are lost."""
    name = args.get("node")
    if not name:
        return _usage_error("cluster leave node=<Node> [-k | --kill_sessions]")
    members = _membership(node)
    if members is None:
        return False, "Error: this node is not in a cluster"
    phase = args.get("phase")  # with several workers: "sessions" on each, then "members" on worker 0
    summary = ""
    try:
        interval = float(args.get("i", args.get("summary-interval", "5")))
        timeout = float(args.get("t", args.get("timeout", "60")))
    except ValueError:
        return False, "Error: -i and -t take a number of seconds"
    if name == node.name and phase in (None, "sessions"):
        node.listeners.stop_all()
        if "k" in args.bare or "kill_sessions" in args.bare:
            for session in list(node.sessions):
                session.kick(0x8B)  # server shutting down: the client reconnects elsewhere
            gevent.sleep(0)
            moved, messages, left = node.cluster.registrations.migrate_all(interval, timeout)
            summary = f": {moved} sessions moved ({messages} messages), {left} left on this node"
    if phase == "sessions" or node.cluster.index != 0:
        return True, f"Done{summary}"
    down = name != node.name and name in members.members() and not members.running(name)
    why = members.leave(name)
    if why:
        return False, f"Error: {why}"
    if down:  # gone for good: its sessions are re-created elsewhere; say at what cost
        summary = f": {node.cluster.sessions.report_departure(name, timeout)}"
    return True, f"Done{summary}"

