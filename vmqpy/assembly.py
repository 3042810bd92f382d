"""A broker Node with the layers above it plugged in.

`vmqpy.broker` is one process's broker and imports neither `vmqpy.admin` nor
`vmqpy.cluster`: whoever starts a node (`vernemq console`, a worker process)
builds it here, so the layers are wired in one place.
"""

from __future__ import annotations

from vmqpy.broker.node import Node


def node_with_services(cfg, runtime_factory=None) -> Node:
    """A Node with its admin socket, its operations (HTTP, $SYS, Graphite) and, from
    `runtime_factory(node)`, the runtime that links it to other processes."""
    from vmqpy.admin.rpc import AdminServer
    from vmqpy.admin.services import Operations

    node = Node(cfg)
    if runtime_factory is not None:
        node.workers = runtime_factory(node)
    node.admin = AdminServer(node)
    if node.workers is None or node.workers.runs_operations:
        node.ops = Operations(node)
    return node
