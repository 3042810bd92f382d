"""The node's figures with nr_of_workers > 1, for what runs in worker 0 only (docs/workers.md).

HTTP listeners, $SYS and Graphite run in worker 0 (they would share a port);
`WorkersView` gives them the node's figures: every worker answers a T_STATS
RPC on its link socket with its metrics, `node status` row and health
concerns, and the answers are combined (metrics.combine: summed; the largest
for uptime and the retained messages every worker holds). Worker 0 reads its
own without an RPC. A worker that does not answer makes /health 503 and is
left out of the sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vmqpy.admin.commands import Result
from vmqpy.cluster import commands
from vmqpy.cluster import links as iw
from vmqpy.metrics import Summed, sum_samples

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

STATS_TIMEOUT = 5.0


class WorkersView:
    """services.LocalView's interface, over every worker of the node."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def gather(self) -> list[dict[str, Any] | BaseException]:
        """Each worker's stats (WorkerRuntime.stats), or why it did not answer; indexed by worker."""
        rt = self.runtime
        others = [k for k in range(rt.count) if k != rt.index]
        answers = dict(zip(others, commands.ask(rt.links.paths, others, (iw.T_STATS,), STATS_TIMEOUT),
                           strict=True))
        answers[rt.index] = rt.stats()
        return [answers[k] for k in range(rt.count)]

    def metrics(self, labelled: bool = False) -> Summed:
        """The node's metrics; `labelled`: with VerneMQ's mqtt_version samples (for /metrics)."""
        field = "labelled" if labelled else "metrics"
        return sum_samples(s[field] for s in self.gather() if isinstance(s, dict))

    def status(self) -> dict[str, Any]:
        rows = [s["status"] for s in self.gather() if isinstance(s, dict)]
        return commands.combine_rows(rows, list(rows[0]), None)[0]

    def health(self) -> list[str]:
        concerns = []
        for k, s in enumerate(self.gather()):
            if isinstance(s, dict):
                concerns += [f"Worker {k}: {c}" for c in s["health"]]
            else:
                concerns.append(f"Worker {k} is not running")
        return concerns

    def execute(self, argv: list[str]) -> Result:
        return commands.run(self.runtime.links.paths, argv)
