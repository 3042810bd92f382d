"""The command tree behind the admin socket: `vernemq` and `vmq-admin` commands.

Each command is one function taking the node and its parsed `key=value`
arguments (VerneMQ's style: `session show --client_id=x` or `client_id=x`)
and returning (ok, text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent

from vmqpy.admin.table import render_table

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

Command = Callable[["Node", dict[str, str]], tuple[bool, str]]
COMMANDS: dict[tuple[str, ...], Command] = {}


def command(*path: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[path] = fn
        return fn
    return register


def parse_args(words: list[str]) -> dict[str, str]:
    """`--a=1 b=2 --flag` -> {'a': '1', 'b': '2', 'flag': 'true'}."""
    args = {}
    for word in words:
        word = word.lstrip("-")
        key, sep, value = word.partition("=")
        args[key] = value if sep else "true"
    return args


def run_command(node: Node, argv: list[str]) -> tuple[bool, str]:
    for n in range(len(argv), 0, -1):
        fn = COMMANDS.get(tuple(argv[:n]))
        if fn is not None:
            return fn(node, parse_args(argv[n:]))
    known = sorted(" ".join(p) for p in COMMANDS)
    return False, "Unknown command. Available commands:\n  " + "\n  ".join(known)


@command("ping")
def ping(node: Node, args: dict) -> tuple[bool, str]:
    return True, "pong"


@command("stop")
def stop(node: Node, args: dict) -> tuple[bool, str]:
    gevent.spawn_later(0.05, node.stop)
    return True, "ok"


@command("node", "status")
def node_status(node: Node, args: dict) -> tuple[bool, str]:
    return True, f"{node.name} running"


@command("metrics", "show")
def metrics_show(node: Node, args: dict) -> tuple[bool, str]:
    snap = node.metrics.snapshot()
    return True, "\n".join(f"counter.{k} = {v}" for k, v in sorted(snap.items()))


@command("listener", "show")
def listener_show(node: Node, args: dict) -> tuple[bool, str]:
    rows = [listener.describe() for listener in node.listeners.all.values()]
    return True, render_table(rows, ["type", "status", "ip", "port", "mountpoint", "max_conns", "active_conns"])


@command("session", "show")
def session_show(node: Node, args: dict) -> tuple[bool, str]:
    rows = []
    for s in sorted(node.sessions, key=lambda s: s.client_id):
        if "client_id" in args and args["client_id"] != s.client_id:
            continue
        rows.append({"client_id": s.client_id, "mountpoint": s.mountpoint, "user": s.username or "",
                     "peer_host": s.peer[0], "peer_port": s.peer[1], "protocol": s.proto_level,
                     "is_online": True, "queue_size": s.queue.size() if s.queue else 0})
    return True, render_table(rows, ["client_id", "is_online", "mountpoint", "peer_host", "peer_port",
                                     "user", "protocol", "queue_size"])
