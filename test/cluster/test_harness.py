"""The multi-host harness itself: real nodes on namespaced (or loopback) hosts, real MQTT clients."""

import os
import subprocess
import sys

import pytest
from broker import wait_until
from netns import (
    SUBNET,
    ClusterNode,
    Hosts,
    NetnsError,
    cleanup_stale,
    cluster_conf,
    ip_cmd,
    needs_netns,
    ours,
    process_state,
    process_tree,
    reachable,
)

NETNS_ONLY = pytest.mark.parametrize("mode", ["netns"], indirect=True)  # link faults: no loopback variant
BEST_ONLY = pytest.mark.parametrize("mode", ["auto"], indirect=True)  # namespaces if possible, else loopback
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))"


def round_trip(node: ClusterNode, cid: str) -> None:
    """Subscribe and publish on `node` (QoS 1) and get the message back."""
    sub = node.client(f"{cid}-sub")
    sub.connect()
    sub.subscribe(f"harness/{cid}", qos=1)
    pub = node.client(f"{cid}-pub")
    pub.connect()
    pub.publish(f"harness/{cid}", f"hello {node.nodename}", qos=1)
    [m] = sub.expect()
    assert m.payload == f"hello {node.nodename}".encode()
    pub.disconnect()
    sub.disconnect()


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_nodes_on_two_hosts(cluster, mode, cid):
    hs, nodes = cluster(2)
    assert hs.netns == (mode == "netns")
    assert [n.nodename for n in nodes] == [f"node0@{hs[0].ip}", f"node1@{hs[1].ip}"]
    assert hs[0].ip != hs[1].ip
    for node in nodes:
        assert node.conf["listener.tcp.default"] == f"{node.host.ip}:{node.port}"
        assert node.conf["nr_of_workers"] == "1"
        assert node.ping()  # the admin socket is a file: reachable across namespaces
        round_trip(node, f"{cid}-{node.index}")
    if mode == "netns":
        assert all(n.port == 1883 for n in nodes)
        # the pid we hold is the node itself (ip netns exec execs it), inside its host's namespace
        assert netns_of(nodes[0].proc.pid) != netns_of(os.getpid())
        assert netns_of(nodes[0].proc.pid) != netns_of(nodes[1].proc.pid)


@BEST_ONLY
def test_hosts_reach_each_other(cluster, mode):
    hs, nodes = cluster(2)
    a, b = hs
    for src, dst in ((a, nodes[1]), (b, nodes[0])):
        r = src.exec([sys.executable, "-c", CONNECT, dst.host.ip, str(dst.port), "5"])
        assert r.returncode == 0, r.stderr


@NETNS_ONLY
def test_split_and_heal(cluster, cid):
    hs, nodes = cluster(2)
    a, b = hs
    node = nodes[1]
    assert reachable(*node.address)
    b.split()
    assert b.is_split
    assert not reachable(*node.address, timeout=0.5)  # from the test process, over the bridge
    r = a.exec([sys.executable, "-c", CONNECT, b.ip, str(node.port), "0.5"])  # from the other host
    assert r.returncode != 0
    assert reachable(*nodes[0].address)  # the other host is unaffected
    b.heal()
    wait_until(lambda: reachable(*node.address), 10, "the healed host")
    r = a.exec([sys.executable, "-c", CONNECT, b.ip, str(node.port), "5"])
    assert r.returncode == 0, r.stderr
    round_trip(node, cid)


@NETNS_ONLY
def test_loss(cluster, cid):
    hs, nodes = cluster(1)
    [h], [node] = hs, nodes
    h.loss(100)  # skips if neither netem nor nftables can drop packets here
    assert h.loss_pct == 100
    assert not reachable(*node.address, timeout=0.5)
    h.no_loss()
    assert reachable(*node.address)
    h.loss(10)
    h.no_loss()
    round_trip(node, cid)


def test_link_faults_skip_on_loopback(hosts):
    hs = hosts(1, netns=False)
    assert hs[0].ip == "127.0.0.2" and hs[0].ns is None and not hs.netns
    assert hs[0].run(["true"]) == ["true"]
    for fault in (hs[0].split, hs[0].heal, lambda: hs[0].loss(5), hs[0].no_loss):
        with pytest.raises(pytest.skip.Exception, match="link faults need network namespaces"):
            fault()


def test_pause_and_resume(cluster, cid):
    hs, [node, other] = cluster(2)
    sub = node.client(f"{cid}-sub")
    sub.connect()
    sub.subscribe(f"pause/{cid}", qos=0)
    pub = node.client(f"{cid}-pub")
    pub.connect()
    node.pause()
    assert node.paused
    assert all(process_state(p) == "T" for p in process_tree(node.proc.pid))
    pub.publish(f"pause/{cid}", b"while paused")
    sub.expect_none(0.3)  # the node does not run...
    round_trip(other, cid)  # ...the other one does
    node.resume()
    assert not node.paused
    [m] = sub.expect()  # what was sent meanwhile waited in the socket buffers
    assert m.payload == b"while paused"
    assert node.ping()
    pub.disconnect()
    sub.disconnect()


TREE = """
import subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
print(" ".join(str(k.pid) for k in kids), flush=True)
time.sleep(60)
"""


def test_pause_stops_the_children_too(hosts, tmp_path):
    """A node with workers is a process tree (nr_of_workers > 1): pause/resume/kill act on all of it."""
    hs = hosts(1)
    node = ClusterNode(hs[0], tmp_path, 0)
    node.proc = subprocess.Popen(hs[0].run([sys.executable, "-c", TREE]), stdout=subprocess.PIPE, text=True)
    try:
        kids = [int(p) for p in node.proc.stdout.readline().split()]
        tree = process_tree(node.proc.pid)
        assert tree == [node.proc.pid, *kids]  # with `ip netns exec` too: it execs, no wrapper process
        node.pause()
        assert [process_state(p) for p in tree] == ["T"] * 3
        node.resume()
        wait_until(lambda: all(process_state(p) in ("S", "R") for p in tree), 5, "processes to continue")
        node.pause()
        node.kill()  # SIGKILL works on stopped processes, and takes the children with it
        wait_until(lambda: all(process_state(p) in (None, "Z") for p in kids), 5, "children to die")
    finally:
        node.kill()
        node.cleanup()


@BEST_ONLY
def test_restart_keeps_data_dir_and_address(cluster, cid):
    hs, [node] = cluster(1)
    sub = node.client(f"{cid}-sub", clean=False)
    sub.connect()
    sub.subscribe(f"restart/{cid}", qos=1)
    sub.disconnect()
    old = node.proc.pid
    node.restart(crash=True)
    assert node.proc.pid != old
    node.restart()
    pub = node.client(f"{cid}-pub")
    pub.connect()
    pub.publish(f"restart/{cid}", b"kept", qos=1)
    pub.disconnect()
    sub = node.client(f"{cid}-sub", clean=False)
    _, flags, _ = sub.connect()
    assert flags.session_present  # the session survived both restarts: same data dir
    [m] = sub.expect()
    assert m.payload == b"kept"
    sub.disconnect()


def test_cluster_conf(hosts):
    hs = hosts(2)
    conf = cluster_conf(hs[1], 45000, "secret")
    assert conf == {"listener.vmq.clustering": f"{hs[1].ip}:45000", "distributed_cookie": "secret"}
    auto = cluster_conf(hs[0])
    assert auto["listener.vmq.clustering"].startswith(f"{hs[0].ip}:")


@needs_netns
def test_topology_stays_on_the_machine():
    with Hosts(2, netns=True) as hs:
        assert hs.subnet.startswith(f"{SUBNET}.")
        for h in hs:
            assert len(h.veth) <= 15 and len(h.peer) <= 15
            assert ip_cmd("route", "show", "default", ns=h.ns).strip() == ""  # nowhere to go but the /24
            assert ip_cmd("-4", "-o", "addr", "show", "dev", h.veth, ns=h.ns).split()[3] == f"{h.ip}/24"
            assert "UP" in ip_cmd("link", "show", "lo", ns=h.ns)
        ports = sorted(line.split(": ")[1].split("@")[0]
                       for line in ip_cmd("-o", "link", "show", "master", hs.bridge).splitlines())
        assert ports == sorted(h.peer for h in hs)  # only our veths, no real NIC
        route = ip_cmd("route", "get", hs[0].ip)
        assert f"dev {hs.bridge}" in route and " via " not in route


@needs_netns
def test_teardown_removes_everything():
    with Hosts(2, netns=True) as hs:
        namespaces, links = hs.names()
        assert set(namespaces) <= set(ip_cmd("netns", "list").split())
        node_ns = hs[0].ns
        # a process left running in a namespace does not keep it (or its veth) alive
        proc = subprocess.Popen(hs[0].run(["sleep", "60"]))
        assert tuple(map(set, ours(hs.tag))) == (set(namespaces), set(links))
    proc.wait(5)
    assert ours(hs.tag) == ([], [])
    listed = ip_cmd("netns", "list")
    assert node_ns not in listed
    link_text = ip_cmd("-o", "link", "show")
    assert not any(name in link_text for name in links + [h.veth for h in hs])
    with pytest.raises(NetnsError, match="closed"):
        hs[0].split()


@needs_netns
def test_teardown_after_failure():
    with pytest.raises(ZeroDivisionError), Hosts(1, netns=True) as hs:
        assert any(ours(hs.tag))
        1 / 0  # noqa: B018
    assert ours(hs.tag) == ([], [])


@needs_netns
def test_stale_leftovers_of_a_dead_run_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()
    tag = f"vq{dead.pid:x}-0"
    ip_cmd("netns", "add", f"{tag}-0")
    ip_cmd("link", "add", f"{tag}b", "type", "bridge")
    with Hosts(1, netns=True) as live:
        assert ours(tag) == ([], [])  # removed when the new Hosts opened
        assert any(ours(live.tag))
        assert cleanup_stale() == []  # a live Hosts is never stale
        assert any(ours(live.tag))
    assert ours(live.tag) == ([], [])
