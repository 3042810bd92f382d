"""vmq-admin node start|stop|history|upgrade, metrics reset, log level|show config, trace stop_all.

As VerneMQ's vmq_server_cli, vmq_info_cli and vmq_tracer_cli. `node stop`
stops the server application, not the node: MQTT listeners close and clients
are disconnected, while the admin socket and the HTTP listeners stay up
(`node start` opens the listeners again). `node upgrade` is Erlang's hot
code upgrade, which has no counterpart here: it says so.
"""

from __future__ import annotations

import logging
import logging.handlers
from typing import TYPE_CHECKING

from vmqpy import log as vmq_log
from vmqpy.admin import trace
from vmqpy.admin.commands import GROUPS, Args, Result, Table, command
from vmqpy.mqtt import reasons as R

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)
GROUPS["log"] = "Manage log"
LOG_LEVEL_USAGE = "Usage: vmq-admin log level logger=<logger> level=<level>"


@command("node", "start")
def node_start(node: Node, args: Args) -> Result:
    """Starts the server application within this node (its MQTT listeners).

  This is typically not necessary since the server application is started
  automatically when starting the service."""
    node.listeners.start_all()
    return True, "Done"


@command("node", "stop")
def node_stop(node: Node, args: Args) -> Result:
    """Stops the server application within this node.

  Its MQTT listeners close and its clients are disconnected (persistent
  sessions keep their messages); the admin socket and HTTP listeners stay,
  and `vmq-admin node start` starts it again. This is typically not
  necessary since the server application is stopped automatically when the
  service is stopped."""
    node.listeners.stop_all()
    for session in list(node.sessions):
        session.kick(R.SERVER_SHUTTING_DOWN)
    return True, "Done"


@command("node", "history")
def node_history(node: Node, args: Args) -> Result:
    """Prints empty_state or existing_state: whether this node holds any state yet.

  For scripts that check for an empty node at boot: existing_state once it
  keeps retained messages, persistent sessions, offline messages or knows
  other cluster members."""
    members = node.cluster.members.members() if node.cluster is not None else {node.name}
    held = (node.retain.count or node.registry.sessions or node.msg_store.stats()["index_entries"]
            or set(members) - {node.name})
    return True, "existing_state" if held else "empty_state"


@command("node", "upgrade")
def node_upgrade(node: Node, args: Args) -> Result:
    """Hot code upgrade (VerneMQ: Erlang release handling): not available in vmqpy.

  vmq-admin node upgrade [--upgrade-now] [--instruction-file=<File>]

  vmqpy has no hot code upgrade: install the new package and restart the
  node (`vernemq restart`); in a cluster, one node after the other."""
    how = "run" if "upgrade-now" in args else "dry_run"
    return False, (f"{how} upgrade: not supported: vmqpy has no hot code upgrade; install the new "
                   "package and restart the node (vernemq restart), one cluster node after the other")


@command("node", "swc_sync_status")
def node_sync_status(node: Node, args: Args) -> Result:
    """Shows whether this node has the cluster's metadata: InitSynced true once it synced with every
    other member (VerneMQ: per SWC partition; vmqpy's metadata is one replica, so one row)."""
    waiting = node.cluster.members.syncing() if node.cluster is not None else []
    return True, Table([{"SWC Partition": "metadata", "InitSynced": not waiting}], ["SWC Partition", "InitSynced"])


@command("node", "flag_as_init_synced")
def node_flag_as_init_synced(node: Node, args: Args) -> Result:
    """VerneMQ's SWC only: mark a node as initially synced. Not needed in vmqpy.

  A joining vmqpy node syncs the metadata with the others by itself and answers
  `vernemq ping` once it has; there is no flag to set."""
    return False, ("not needed: vmqpy's metadata has no SWC initial sync to skip; a node syncs with the "
                   "cluster by itself (vmq-admin node swc_sync_status shows when it has)")


@command("metrics", "reset")
def metrics_reset(node: Node, args: Args) -> Result:
    """Reset all counter metrics of this node to 0 (gauges show what is, they are not reset)."""
    counters = node.metrics.counters
    for name in counters:
        counters[name] = 0
    return True, "Done"


@command("log", "level")
def log_level(node: Node, args: Args) -> Result:
    """Sets log level for logger.

  vmq-admin log level logger=<logger> level=<level>

  logger: a handler `log show config` lists (console, consolefile, default, syslog);
  level: debug, info, notice, warning, error, critical, alert, emergency, all, none."""
    name, level = args.get("logger"), args.get("level")
    if not name or not level:
        return False, LOG_LEVEL_USAGE
    if level not in vmq_log.LEVELS:
        return False, f"Error: invalid level {level} (valid: {', '.join(vmq_log.LEVELS)})"
    if not vmq_log.set_level(name, level):
        return False, f"Error: logger {name} not found"
    log.info("Changed log level for Logger %s to %s", name, level)
    return True, "Done"


def _handler_row(h: logging.Handler) -> dict[str, str]:
    path = getattr(h, "baseFilename", None)
    kind = "file" if path else "syslog" if isinstance(h, logging.handlers.SysLogHandler) else "standard_io"
    return {"logger": h.get_name(), "level": logging.getLevelName(h.level).lower(), "type": kind,
            "file": path or "-"}


@command("log", "show", "config")
def log_show_config(node: Node, args: Args) -> Result:
    """Shows logging configuration: each logger (handler) with its level, type and file."""
    return True, Table([_handler_row(h) for h in vmq_log.handlers()], ["logger", "level", "type", "file"])


@command("trace", "stop_all")
def trace_stop_all(node: Node, args: Args) -> Result:
    """Stops all running traces (each `trace client` returns what it recorded so far)."""
    trace.stop_all()
    return True, "Done"
