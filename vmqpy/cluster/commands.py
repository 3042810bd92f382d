"""vmq-admin commands with nr_of_workers > 1: which workers run one, how their answers merge.

Used by the parent's admin socket (cluster/parent_admin.py) and by worker 0's /api/v1,
so `vmq-admin X` and `/api/v1/X` give the node's answer either way. Each
worker answers through the RPC on its link socket (links.ask) with
(ok, 'table', rows, columns) or (ok, 'text', output); docs/workers.md lists
the rules per command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gevent

from vmqpy.admin.commands import Result, Table, parse_args
from vmqpy.cluster import links as iw
from vmqpy.cluster.accept import owner
from vmqpy.metrics import combine, fmt_value

if TYPE_CHECKING:
    from collections.abc import Iterable

# Answered by worker 0 alone: every worker holds the same (retained messages, config, plugins,
# webhooks), or only worker 0 has it (API keys live with the HTTP listeners, in worker 0).
FIRST_ONLY = [("retain", "show"), ("api-key",), ("cluster", "show"), ("cluster", "join"), ("show",),
              ("webhooks", "show"), ("plugin", "show"),
              # retained messages are replicated from the worker that deletes them; the others the same
              ("retain", "delete"), ("retain", "delete-expired"), ("config", "show"), ("log", "show"),
              ("tls", "show"), ("tls", "check")]
# Tables whose rows are combined over the workers: the named columns are combined (metrics.combine)
# among rows that agree on every other column; None: one row, every column combined.
COMBINED: dict[tuple[str, ...], tuple[str, ...] | None] = {
    ("node", "status"): None,
    ("store", "show"): None,
    ("listener", "show"): ("status", "active_conns"),
    ("webhooks", "cache", "show"): ("value",),
    ("node", "swc_sync_status"): ("InitSynced",),
}
LIMITED = [("session", "show")]  # rows concatenated, then --limit applied to the node's rows
DEFAULT_LIMIT = 100


def _under(argv: list[str], paths: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    return next((p for p in paths if tuple(argv[:len(p)]) == p), None)


def targets(argv: list[str], count: int) -> list[int]:
    """The workers that run `argv`."""
    if _under(argv, FIRST_ONLY):
        return [0]
    if argv[:2] == ["trace", "client"]:  # the client's session is on the worker owning its id
        args = parse_args(argv[2:])
        client_id = args.get("client-id")
        return [owner(args.get("mountpoint", ""), client_id, count) if client_id else 0]
    return list(range(count))


def ask(paths: list[str], workers: list[int], record: tuple, timeout: float) -> list[Any]:
    """`record` to each of `workers` at once; each answer, or the exception its RPC raised."""
    jobs = [gevent.spawn(iw.ask, paths[k], record, timeout) for k in workers]
    gevent.joinall(jobs)
    return [j.value if j.successful() else j.exception for j in jobs]


def run(paths: list[str], argv: list[str], timeout: float = 30.0) -> Result:
    """Run `argv` on the workers it concerns and merge their answers into the node's."""
    if argv[:2] == ["cluster", "leave"] and len(paths) > 1:
        # every worker moves its sessions away first; only then does worker 0 change the member list
        ok, out = _run(paths, [*argv, "--phase=sessions"], list(range(len(paths))), timeout)
        return _run(paths, [*argv, "--phase=members"], [0], timeout) if ok else (ok, out)
    if argv[:3] == ["session", "disconnect", "batch"]:
        return _batch(paths, argv, timeout)
    return _run(paths, argv, targets(argv, len(paths)), timeout)


def _run(paths: list[str], argv: list[str], workers: list[int], timeout: float) -> Result:
    replies = [r if not isinstance(r, BaseException) else (False, "text", f"worker {k}: {r}")
               for k, r in zip(workers, ask(paths, workers, (iw.T_RPC, argv), timeout), strict=True)]
    return merge(argv, replies)


def _batch(paths: list[str], argv: list[str], timeout: float) -> Result:
    """`count` is per node: the workers one after the other, each with what is left; then worker 0
    passes it on to the other nodes."""
    try:
        left = int(parse_args(argv[3:]).get("count", ""))
    except ValueError:
        return _run(paths, argv, [0], timeout)  # worker 0 answers with the usage
    words = [w for w in argv if not w.startswith("count=")]
    for k in range(len(paths)):
        (reply,) = ask(paths, [k], (iw.T_RPC, [*words, f"count={left}", "--report", "--local-only"]), timeout)
        if isinstance(reply, BaseException) or not reply[0]:
            return _one(reply) if not isinstance(reply, BaseException) else (False, f"worker {k}: {reply}")
        left -= int(reply[2])
    return _run(paths, [*argv, "--remote-only"], [0], timeout)


def merge(argv: list[str], replies: list[tuple]) -> Result:
    failed = [r for r in replies if not r[0]]
    if failed or len(replies) == 1:
        return _one(failed[0] if failed else replies[0])
    if argv[:2] == ["metrics", "show"]:
        return True, sum_lines([r[2] for r in replies])
    if not all(r[1] == "table" for r in replies):
        texts = [r[2] for r in replies]
        # session reauthorize: "Done" where the session is, "Unchanged" on the other workers;
        # node history: existing_state if any worker holds state
        return True, next((t for t in ("Done", "existing_state") if t in texts), texts[0])
    columns = replies[0][3]
    rows = [row for r in replies for row in r[2]]
    path = _under(argv, COMBINED)
    if path is not None:
        return True, Table(combine_rows(rows, columns, COMBINED[path]), columns)
    if _under(argv, LIMITED):
        rows = rows[:_limit(argv)]
    return True, Table(rows, columns)


def _one(reply: tuple) -> Result:
    return (reply[0], Table(reply[2], reply[3])) if reply[1] == "table" else (reply[0], reply[2])


def _limit(argv: list[str]) -> int:
    try:
        return int(parse_args(argv).get("limit", DEFAULT_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT  # each worker already refused it


def combine_rows(rows: list[dict[str, Any]], columns: list[str],
                 combined: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Rows agreeing on every column not in `combined` become one (None: all rows become one)."""
    names = columns if combined is None else combined
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = tuple(str(row.get(c)) for c in columns if c not in names)
        groups.setdefault(key, []).append(row)
    return [{**same[0], **{c: combine(c, [r.get(c) for r in same]) for c in names if c in same[0]}}
            for same in groups.values()]


def sum_lines(outputs: list[str]) -> str:
    """`kind.name = value` lines of every worker (`metrics show`) -> the node's lines."""
    values: dict[str, list[float]] = {}
    for text in outputs:
        for line in text.splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                values.setdefault(key, []).append(float(value))
    lines = []
    for line in outputs[0].splitlines():
        key, sep, _ = line.partition(" = ")
        lines.append(f"{key} = {fmt_value(combine(key.split('.', 1)[-1], values[key]))}" if sep else line)
    return "\n".join(lines)
