"""Fixtures of the cluster tests: hosts (network namespaces, or loopback addresses) and nodes on them.

Everything a fixture makes is removed when the test ends, passed or failed: nodes are SIGKILLed first,
then the hosts' namespaces, veths and bridge are deleted (see netns.py; leftovers of a run that died
are removed by the next).
"""

import sys
from pathlib import Path

import pytest

# The tests import their helpers by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker import wait_until  # noqa: E402
from clusterkit import running, same_port  # noqa: E402
from netns import ClusterNode, Hosts, cluster_conf, netns_unavailable  # noqa: E402


@pytest.fixture
def hosts():
    """Factory: hosts(n, netns=None) -> an open Hosts (namespaces when possible, else loopback)."""
    made: list[Hosts] = []

    def make(n: int, netns: bool | None = None) -> Hosts:
        h = Hosts(n, netns)
        made.append(h)
        return h.open()

    yield make
    errors = []
    for h in reversed(made):
        try:
            h.close()
        except Exception as e:  # close every one before reporting
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def make_node(hosts, tmp_path):
    """Factory: make_node(host, conf=None, index=None, start=True, **kw) -> ClusterNode; every node is
    SIGKILLed at the end (before the hosts, which this fixture depends on, are removed)."""
    nodes: list[ClusterNode] = []

    def make(host, conf: dict[str, str] | None = None, index: int | None = None, start: bool = True,
             **kw) -> ClusterNode:
        node = ClusterNode(host, tmp_path, len(nodes) if index is None else index, conf, **kw)
        nodes.append(node)
        return node.start() if start else node

    yield make
    for node in nodes:
        node.kill()
        node.cleanup()


@pytest.fixture(params=["netns", "loopback"])
def mode(request):
    """Runs a test once on namespaces (skipped where impossible) and once on loopback hosts; a test can
    narrow it with @pytest.mark.parametrize("mode", ["netns"] | ["auto"], indirect=True), "auto" being
    namespaces where possible, else loopback."""
    if request.param == "netns" and netns_unavailable():
        pytest.skip(f"needs network namespaces: {netns_unavailable()}")
    return request.param


@pytest.fixture
def cluster(mode, hosts, make_node):
    """Factory: cluster(n, conf=None) -> (Hosts, [ClusterNode]), one plain started node per host."""
    def make(n: int, conf: dict[str, str] | None = None):
        hs = hosts(n, netns={"netns": True, "loopback": False}.get(mode))
        return hs, [make_node(h, conf) for h in hs]

    return make


@pytest.fixture
def cluster_nodes(mode, hosts, make_node):
    """Factory: cluster_nodes(n, conf=None, workers=1) -> n started nodes with cluster listeners,
    joined into one cluster through the first, each seeing every node running."""
    def make(n: int, conf: dict[str, str] | None = None, workers: int = 1):
        hs = hosts(n, netns=(mode == "netns"))
        cport = same_port(hs)
        nodes = [make_node(h, {**cluster_conf(h, cport), "nr_of_workers": str(workers), **(conf or {})})
                 for h in hs]
        for node in nodes[1:]:
            ok, out = node.admin("cluster", "join", f"discovery-node={nodes[0].nodename}")
            assert ok, out
        for node in nodes:
            wait_until(lambda node=node: running(node) == {m.nodename: "true" for m in nodes}, 15,
                       f"{node.nodename} to see every node running")
        return nodes

    return make


@pytest.fixture
def three(cluster_nodes):
    """Three joined single-process nodes."""
    return cluster_nodes(3)
