"""vmq-admin session disconnect clients|batch, session unsubscribe, retain delete|delete-expired.

As VerneMQ's vmq_info_cli: the session commands act on the whole cluster
(admin/cluster_wide.py); retained messages are cluster metadata, so a delete
on one node clears the message on every node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmqpy.admin import cluster_wide
from vmqpy.admin.commands import Args, Result, Table, command
from vmqpy.broker.message import Msg
from vmqpy.mqtt import reasons as R

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

DISCONNECT_USAGE = "Usage: vmq-admin session disconnect client-id=<ClientId> [--mountpoint=<MP>] [--cleanup]"
CLIENTS_USAGE = "Usage: vmq-admin session disconnect clients client-ids=<ClientId>,... [-m <MP>] [-c]"
BATCH_USAGE = "Usage: vmq-admin session disconnect batch count=<N> [-m <MP>] [-c] [-f <ClientIds>] [-n <Nodes>]"
UNSUBSCRIBE_USAGE = "Usage: vmq-admin session unsubscribe client-id=<ClientId> topic=<Topic>"
BAD_MOUNTPOINT = "Invalid mountpoint value"


def mountpoint(args: Args) -> str | None:
    """--mountpoint / -m (default: the default mountpoint ""); None when given without a value."""
    given = [name for name in ("mountpoint", "m") if name in args]
    if not given:
        return ""
    return _value(args, "mountpoint", "m")


def cleanup(args: Args) -> bool:
    return "cleanup" in args or "c" in args.bare


def disconnect(node: Node, sid: tuple[str, str], clean: bool) -> bool:
    """Disconnect `sid` if it is online here; with `clean` drop its stored state too.
    True if this node had anything of it."""
    online = [s for s in node.sessions if s.sid == sid and not s.closed]
    for session in online:
        if clean:
            session.expiry = 0  # the session's own cleanup then drops queue and subscriptions
        session.kick(R.ADMINISTRATIVE_ACTION)
    if clean and not online and sid in node.registry.sessions:
        node.registry.expire(sid)
    return bool(online) or sid in node.registry.sessions


def disconnect_everywhere(node: Node, path: tuple[str, ...], args: Args, client_ids: list[str]) -> Result:
    """Disconnect `client_ids` here and, from worker 0, on every other node."""
    mp = mountpoint(args)
    if mp is None:
        return False, BAD_MOUNTPOINT
    if cluster_wide.runs_here(args):
        for client_id in client_ids:
            disconnect(node, (mp, client_id), cleanup(args))
    if cluster_wide.passes_on(node, args):
        cluster_wide.on_other_nodes(node, cluster_wide.words(path, args))
    return True, "Done"


@command("session", "disconnect")
def session_disconnect(node: Node, args: Args) -> Result:
    """Forcefully disconnects a client from the cluster.

  vmq-admin session disconnect client-id=<ClientId>

  --mountpoint=<Mountpoint>, -m
      specifies the mountpoint, defaults to the default mountpoint
  --cleanup, -c
      removes the stored cluster state of this client like stored
      messages and subscriptions.

  Sub-commands:
    clients     Forcefully disconnect multiple running sessions
    batch       Forcefully disconnect a number of (random) session"""
    if not args.get("client-id"):
        return False, DISCONNECT_USAGE
    return disconnect_everywhere(node, ("session", "disconnect"), args, [args["client-id"]])


@command("session", "disconnect", "clients")
def session_disconnect_clients(node: Node, args: Args) -> Result:
    """Forcefully disconnects a number of clients from the cluster.

  vmq-admin session disconnect clients client-ids=<Comma Seperated List of ClientId>

  --mountpoint=<Mountpoint>, -m
      specifies the mountpoint, defaults to the default mountpoint
  --cleanup, -c
      removes the stored cluster state of this client like stored
      messages and subscriptions."""
    ids = [c for c in args.get("client-ids", "").split(",") if c]
    if not ids:
        return False, CLIENTS_USAGE
    return disconnect_everywhere(node, ("session", "disconnect", "clients"), args, ids)


@command("session", "disconnect", "batch")
def session_disconnect_batch(node: Node, args: Args) -> Result:
    """Forcefully disconnects a number of (random) clients from the cluster.

  vmq-admin session disconnect batch count=<Number of clients to be disconnected>

  --mountpoint=<Mountpoint>, -m
      specifies the mountpoint, defaults to the default mountpoint
  --cleanup, -c
      removes the stored cluster state of this client like stored
      messages and subscriptions.
  --filter-client-ids=<list of client-ids>, -f
      the clients will be filtered and not disconnected from the cluster
  --node=<list of nodes>, -n
      limits disconnects to certain nodes

  At most count clients are disconnected on each node, as in VerneMQ."""
    try:
        count = int(args.get("count", ""))
    except ValueError:
        return False, BATCH_USAGE
    mp = mountpoint(args)
    if mp is None:
        return False, BAD_MOUNTPOINT
    keep = set(args.get("filter-client-ids", args.get("f", "")).split(",")) - {""}
    nodes = set(args.get("node", args.get("n", "")).split(",")) - {""}
    done = 0
    if cluster_wide.runs_here(args) and (not nodes or node.name in nodes):
        online = sorted({s.sid for s in node.sessions if not s.closed and s.connected}, key=lambda sid: sid[1])
        for sid in [sid for sid in online if sid[0] == mp and sid[1] not in keep][:count]:
            done += disconnect(node, sid, cleanup(args))
    if "report" in args.bare:  # asked by this node's parent or another node: how many went
        return True, str(done)
    if cluster_wide.passes_on(node, args):
        for name, pids in cluster_wide.remote_endpoints(node).items():
            if not nodes or name in nodes:
                batch_on(node, pids, args, count)
    return True, "Done"


def batch_on(node: Node, pids: list[str], args: Args, count: int) -> int:
    """Disconnect up to `count` clients over the endpoints `pids` of one node, one after the other."""
    done = 0
    for pid in pids:
        if done >= count:
            break
        argv = cluster_wide.words(("session", "disconnect", "batch"), args, count=str(count - done))
        reply = cluster_wide.ask(node, pid, [*argv, "--report"])
        done += int(reply[2]) if reply[0] else 0
    return done


@command("session", "unsubscribe")
def session_unsubscribe(node: Node, args: Args) -> Result:
    """Unsubscribes a topic for a given client.

  vmq-admin session unsubscribe client-id=<ClientId> topic=<Topic>

  --plugin, -p
      calls on_topic_unsubscribed plugin handler
  --mountpoint=<Mountpoint>, -m
      specifies the mountpoint, defaults to the default mountpoint"""
    client_id, topic = args.get("client-id"), args.get("topic")
    if not client_id or not topic:
        return False, UNSUBSCRIBE_USAGE
    mp = mountpoint(args)
    if mp is None:
        return False, BAD_MOUNTPOINT
    found = False
    if cluster_wide.runs_here(args):
        found = node.registry.unsubscribe((mp, client_id), topic, notify="plugin" in args or "p" in args.bare)
    if cluster_wide.passes_on(node, args):
        replies = cluster_wide.on_other_nodes(node, cluster_wide.words(("session", "unsubscribe"), args))
        found = found or any(r[0] and r[2] == "Done" for r in replies)
    return True, "Done" if found else "Not successfull"


@command("retain", "delete")
def retain_delete(node: Node, args: Args) -> Result:
    """Delete the retained MQTT message for a topic and mountpoint.

  vmq-admin retain delete --topic=<Topic> [--mountpoint=<Mountpoint>]

  --topic, -t
  --mountpoint, -m   if not set, the default empty mountpoint is assumed"""
    topic = _value(args, "topic", "t")
    if not topic:
        return False, "No valid topic given."
    node.retain.put(Msg(topic, b"", mountpoint=_value(args, "mountpoint", "m") or ""))
    return True, "Done"


def _value(args: Args, *names: str) -> str | None:
    """The value of the first of `names` given with one (`--topic=a/b`, `-t a/b`)."""
    return next((args[n] for n in names if n in args.valued), None)


@command("retain", "delete-expired")
def retain_delete_expired(node: Node, args: Args) -> Result:
    """Delete all expired retained messages (MQTT 5 message expiry); shows how many."""
    return True, Table([{"expired": node.retain.delete_expired()}], ["expired"])
