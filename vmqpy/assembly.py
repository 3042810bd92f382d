"""A broker Node with the layers above it plugged in.

`vmqpy.broker` is one process's broker and imports neither `vmqpy.admin` nor
`vmqpy.cluster`: whoever starts a node (`vernemq console`, a worker process)
builds it here, so the layers are wired in one place.
"""

from __future__ import annotations

from vmqpy.broker.node import Node
from vmqpy.config_schema import CLUSTER_KINDS


def node_with_services(cfg, runtime_factory=None) -> Node:
    """A Node with its admin socket, its operations (HTTP, $SYS, Graphite) and, from
    `runtime_factory(node)`, the runtime that links it to other processes."""
    from vmqpy.admin.rpc import AdminServer
    from vmqpy.admin.services import Operations

    node = Node(cfg)
    if runtime_factory is not None:
        node.cluster = runtime_factory(node)
    node.admin = AdminServer(node)
    if node.cluster is None or node.cluster.runs_operations:
        node.ops = Operations(node)
    return node


def single_process_runtime(cfg):
    """The runtime of a one-process node that has a cluster listener (None: it stands alone)."""
    if not any(spec.kind in CLUSTER_KINDS for spec in cfg.listeners):
        return None
    from vmqpy.cluster.runtime import WorkerRuntime
    from vmqpy.cluster.workers import link_paths

    return lambda node: WorkerRuntime(node, 0, 1, {}, link_paths(cfg, 1))


def start(node: Node) -> None:
    """Links first (a worker must reach the others before it serves clients), then the node."""
    if node.cluster is not None:
        node.cluster.start_links()
    node.start()
