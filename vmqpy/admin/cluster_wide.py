"""vmq-admin commands that act on the whole cluster, as VerneMQ's do (session disconnect, unsubscribe).

A command runs on every worker of the node it is typed on (cluster/commands.py);
worker 0 then runs it on every endpoint (worker) of the other nodes it is
linked to, through the registrations' calls (op `admin`), with `--local-only`
so that they do not pass it on again. Nodes that are down are not reached,
as in VerneMQ.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gevent

from vmqpy.admin.commands import Args

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)
LOCAL_ONLY = "local-only"  # internal flag: run here only (a command passed on by another node)
REMOTE_ONLY = "remote-only"  # internal flag: only pass it on (its local part already ran)
TIMEOUT = 10.0


def words(path: tuple[str, ...], args: Args, **changes: str) -> list[str]:
    """The argv of command `path` with `args` (key=value and bare flags), `changes` applied."""
    out = list(path)
    values = {k: args[k] for k in args.valued} | changes
    out += [f"{k}={v}" for k, v in values.items() if k not in (LOCAL_ONLY, REMOTE_ONLY)]
    out += [f"--{k}" for k in args.bare if k not in values and k not in (LOCAL_ONLY, REMOTE_ONLY)]
    return out


def passes_on(node: Node, args: Args) -> bool:
    """Whether this process passes the command on to the other nodes."""
    return node.cluster is not None and node.cluster.index == 0 and LOCAL_ONLY not in args


def runs_here(args: Args) -> bool:
    return REMOTE_ONLY not in args


def remote_endpoints(node: Node) -> dict[str, list[str]]:
    """node name -> the linked endpoints (workers) of every other node, in worker order."""
    out: dict[str, list[str]] = {}
    for pid, peer in sorted(node.cluster.links.peers.items()):
        name = pid.rpartition("/")[0]
        if peer.up and name != node.name:
            out.setdefault(name, []).append(pid)
    return out


def ask(node: Node, pid: str, argv: list[str], timeout: float = TIMEOUT) -> Any:
    """Run `argv` on endpoint `pid`: (ok, 'text', output) or (ok, 'table', rows, columns)."""
    try:
        return node.cluster.registrations._ask(pid, "admin", ([*argv, f"--{LOCAL_ONLY}"],), timeout)
    except TimeoutError as e:
        log.warning("%s: %s", " ".join(argv), e)
        return False, "text", f"{pid}: {e}"


def on_other_nodes(node: Node, argv: list[str]) -> list[Any]:
    """Run `argv` on every endpoint of the other nodes at once; their answers."""
    pids = [pid for pids in remote_endpoints(node).values() for pid in pids]
    jobs = [gevent.spawn(ask, node, pid, argv) for pid in pids]
    gevent.joinall(jobs)
    return [job.value for job in jobs]
