"""The parent's admin socket with nr_of_workers > 1: `vernemq` and `vmq-admin` talk to it.

`ping` answers pong once every worker is ready, `stop` stops them all, `workers
show` lists them. Every other command runs on the workers it concerns and their
answers are merged into the node's (commands.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gevent

from vmqpy.admin.commands import Result, Table
from vmqpy.admin.rpc import AdminServer
from vmqpy.cluster import commands

if TYPE_CHECKING:
    from vmqpy.cluster.workers import Supervisor


class ParentAdmin(AdminServer):
    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(supervisor)  # uses supervisor.config["admin.socket"]
        self.supervisor = supervisor

    def command(self, argv: list[str]) -> Result:
        sup = self.supervisor
        if argv == ["ping"] and not sup.ready:
            return False, "workers starting"
        if argv == ["stop"]:
            gevent.spawn_later(0.05, sup.stop)
            return True, "ok"
        if argv[:2] == ["workers", "show"]:
            return True, Table(sup.describe(), ["worker", "pid", "ready", "restarts"])
        if not sup.ready:
            return False, "workers starting"
        return commands.run(sup.link_paths, argv)
