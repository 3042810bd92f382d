"""`vmq-admin store ...`: the offline message store's own counters.

    store show       one row: messages (bodies), index_entries (one per queued
                     delivery), disk_bytes (table files + WAL), pending_writes
    store compact    flush and compact, so deleted messages leave the disk

`compact` runs on the hub and holds the GIL (rocksdict) until RocksDB is done:
an operator's command for a quiet moment, not something to script under load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmqpy.admin.commands import GROUPS, Args, Result, Table, command

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

GROUPS["store"] = "Show and compact the offline message store"
COLUMNS = ["messages", "index_entries", "disk_bytes", "pending_writes"]


@command("store", "show")
def store_show(node: Node, args: Args) -> Result:
    """Show the offline message store's counters.

  messages: stored bodies (a message fanned out to many offline sessions counts once);
  index_entries: queued deliveries; disk_bytes: table files and WAL;
  pending_writes: changes staged for the next write batch."""
    return True, Table([node.msg_store.stats()], COLUMNS)


@command("store", "compact")
def store_compact(node: Node, args: Args) -> Result:
    """Flush and compact the offline message store, so deleted messages leave the disk.

  Blocks the node while RocksDB compacts: run it at a quiet moment."""
    node.msg_store.compact()
    return True, "ok"
