"""The parent's admin socket with nr_of_workers > 1: `vernemq` and `vmq-admin` talk to it.

`ping` answers pong once every worker is ready, `stop` stops them all, `workers
show` lists them. Every other command runs on the workers (an RPC on each
worker's link socket, interworker.request) and their answers are merged:
metrics are summed, session rows concatenated, commands that change state run
on every worker, and what every worker answers alike (retained messages, api
keys, usage) comes from worker 0.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import gevent
import ujson

from vmqpy.admin.rpc import MAX_REQUEST, AdminServer
from vmqpy.broker import interworker as iw

if TYPE_CHECKING:
    from vmqpy.broker.workers import Supervisor

# Answered by worker 0 alone: every worker holds the same data, or only worker 0 has it
# (HTTP listeners and api keys live with worker 0, which runs the HTTP listeners).
FIRST_ONLY = {("retain", "show"), ("api-key",), ("cluster", "show"), ("show",), ("trace",), ("webhooks", "show"),
              ("plugin", "show"), ("listener", "show")}
MAX_OF = {"system_wallclock", "uptime"}


class ParentAdmin(AdminServer):
    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(supervisor)  # uses supervisor.config["admin.socket"]
        self.supervisor = supervisor

    def _handle(self, sock: socket.socket, _addr) -> None:
        sock.settimeout(30)
        try:
            line = sock.makefile("rb").readline(MAX_REQUEST)
            argv = [str(a) for a in ujson.loads(line)["argv"]]
            ok, output = self.command(argv)
        except (ValueError, KeyError, TypeError) as e:
            ok, output = False, f"bad admin request: {e}"
        except OSError:
            return
        try:
            sock.sendall(ujson.dumps({"ok": ok, "output": output}).encode() + b"\n")
        except OSError:
            pass

    def command(self, argv: list[str]) -> tuple[bool, str]:
        sup = self.supervisor
        if argv == ["ping"]:
            return (True, "pong") if sup.ready else (False, "workers starting")
        if argv == ["stop"]:
            gevent.spawn_later(0.05, sup.stop)
            return True, "ok"
        if argv[:2] == ["workers", "show"]:
            return True, _render(sup.describe(), ["worker", "pid", "ready", "restarts"])
        if not sup.ready:
            return False, "workers starting"
        first = any(tuple(argv[:len(p)]) == p for p in FIRST_ONLY)
        replies = self._ask([0] if first else list(range(sup.count)), argv)
        return _merge(argv, replies)

    def _ask(self, workers: list[int], argv: list[str]) -> list[tuple]:
        paths = self.supervisor.link_paths
        jobs = [gevent.spawn(iw.request, paths[k], argv) for k in workers]
        gevent.joinall(jobs)
        return [j.value if j.successful() else (False, "text", f"worker {k}: {j.exception}")
                for k, j in zip(workers, jobs, strict=True)]


def _merge(argv: list[str], replies: list[tuple]) -> tuple[bool, str]:
    failed = [r for r in replies if not r[0]]
    if failed or len(replies) == 1:
        return _one(failed[0] if failed else replies[0])
    if argv[:2] == ["metrics", "show"]:
        return True, _sum_lines([r[2] for r in replies])
    if all(r[1] == "table" for r in replies):
        columns = replies[0][3]
        if argv[:2] == ["node", "status"]:
            return True, _render([_sum_rows([r[2][0] for r in replies])], columns)
        return True, _render([row for r in replies for row in r[2]], columns)
    return _one(replies[0])


def _one(reply: tuple) -> tuple[bool, str]:
    if reply[1] == "table":
        return reply[0], _render(reply[2], reply[3])
    return reply[0], reply[2]


def _render(rows: list[dict[str, Any]], columns: list[str]) -> str:
    from vmqpy.admin.commands import Table

    return str(Table(rows, columns))


def _sum_lines(outputs: list[str]) -> str:
    """`kind.name = value` lines of every worker -> one set of lines with the values summed."""
    totals: dict[str, float] = {}
    for text in outputs:
        for line in text.splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                name = key.split(".", 1)[-1]
                v = float(value)
                totals[key] = max(totals.get(key, v), v) if name in MAX_OF else totals.get(key, 0) + v
    from vmqpy.metrics import fmt_value

    return "\n".join(f"{key} = {fmt_value(totals[key])}" if sep else line
                     for line in outputs[0].splitlines()
                     for key, sep, _ in [line.partition(" = ")])


def _sum_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    for key, value in out.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in rows]
            out[key] = max(values) if key in MAX_OF else sum(values)
    return out
