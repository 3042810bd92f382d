"""Hosts for the cluster tests: network namespaces on a private bridge, or loopback addresses.

As root with iproute2, `Hosts(n)` makes a Linux bridge in the root namespace and n network namespaces,
each joined to the bridge by a veth pair; namespace i has lo up and 10.77.X.(10+i)/24 on its veth, the
bridge has 10.77.X.1/24 so the test process reaches every host. Nothing routes beyond that /24: the
namespaces have no default route, there is no NAT and the bridge's only ports are our veths, so the
traffic stays on this machine. A host's link can be cut (`split`/`heal`) or made lossy (`loss`).

Otherwise (not root, no `ip`, `ip netns` failing, or VMQPY_TEST_NETNS=0) the hosts are the loopback
addresses 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127/8 to lo): nodes are still separate
addresses, but the only fault left is SIGSTOP; link faults skip with the reason.

Names: every namespace and link of one `Hosts` starts with its tag `vq<pid hex>-<n hex>` (`<tag>-<i>`
namespaces, `<tag>b` bridge, `<tag>h<i>` bridge side and `<tag>n<i>` namespace side of the veths), at
most 14 characters, so concurrent runs never collide and leftovers of a run that died are recognised
(its pid is gone) and removed by the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from broker import Broker, free_port, wait_until
from clients import TIMEOUT, V5, Paho

SUBNET = "10.77"  # 10.77.X.0/24 per Hosts, X chosen free in the root namespace
PREFIX = "vq"
FIRST_HOST = 10  # host i is .(FIRST_HOST + i); the bridge is .1
MAX_HOSTS = 200
MQTT_PORT = 1883  # inside a namespace every port is free
LOSS_TABLE = "vmqpy_loss"
PROBE_K = 0xFF  # the Hosts counter's value kept for netns_unavailable()'s probe
# <tag>b, <tag>h<i>, <tag>n<i>, <tag>-<i> with tag = vq<pid>-<k>
_NAME = re.compile(rf"^{PREFIX}(?P<pid>[0-9a-f]{{1,8}})-(?P<k>[0-9a-f]{{1,2}})"
                   r"(?:b|[hn][0-9a-f]{1,2}|-[0-9a-f]{1,2})$")

_counter = itertools.count()
_live: dict[str, Hosts] = {}  # tag -> open Hosts of this process (never treated as stale)
_live_lock = threading.Lock()


class NetnsError(RuntimeError):
    pass


def ip_cmd(*args: str, ns: str | None = None, check: bool = True, timeout: float = 10.0) -> str:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


@functools.cache
def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None (tried once: a namespace is made and deleted)."""
    if os.environ.get("VMQPY_TEST_NETNS", "1") == "0":
        return "VMQPY_TEST_NETNS=0"
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2)"
    probe = f"{PREFIX}{os.getpid():x}-{PROBE_K:x}-0"  # a name of ours: cleanup_stale knows it
    try:
        ip_cmd("netns", "add", probe)
        ip_cmd("link", "set", "lo", "up", ns=probe)
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"`ip netns` failed: {e}"
    finally:
        ip_cmd("netns", "del", probe, check=False)
    return None


# For tests that mean nothing without link faults (split/heal, loss): skip up front when namespaces are
# impossible here. (Host.split() and friends also skip by themselves on loopback hosts.)
needs_netns = pytest.mark.skipif(netns_unavailable() is not None,
                                 reason=f"needs network namespaces: {netns_unavailable()}")


# ---------------------------------------------------------------------------------------------------------
# What exists now, and the cleanup of leftovers.


def _netns_names() -> list[str]:
    return [line.split()[0] for line in ip_cmd("netns", "list", check=False).splitlines() if line.strip()]


def _link_names() -> list[str]:
    names = []
    for line in ip_cmd("-o", "link", "show", check=False).splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            names.append(parts[1].split("@")[0])
    return names


def ours(tag: str | None = None) -> tuple[list[str], list[str]]:
    """(namespaces, root-namespace links) named by this harness, of one tag or of any."""
    def match(name):
        m = _NAME.match(name)
        return m is not None and (tag is None or _tag_of(m) == tag)

    return [n for n in _netns_names() if match(n)], [n for n in _link_names() if match(n)]


def _tag_of(m: re.Match) -> str:
    return f"{PREFIX}{m['pid']}-{m['k']}"


def _kill_netns_pids(ns: str) -> None:
    """SIGKILL what still runs in namespace `ns` (a namespace lives on while a process is in it)."""
    def pids():
        return [int(p) for p in ip_cmd("netns", "pids", ns, check=False).split() if p.isdigit()]

    for pid in pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not pids(), 5.0, f"processes in {ns} to exit")


def _remove(namespaces: list[str], links: list[str]) -> None:
    for ns in namespaces:
        _kill_netns_pids(ns)
    for link in sorted(links, key=lambda n: n.endswith("b")):  # veths first, then bridges
        ip_cmd("link", "del", link, check=False)
    for ns in namespaces:
        ip_cmd("netns", "del", ns, check=False)


def _stale(tag: str) -> bool:
    pid = int(tag[len(PREFIX):].split("-")[0], 16)
    if pid == os.getpid():
        return tag not in _live
    return not os.path.exists(f"/proc/{pid}")


def cleanup_stale() -> list[str]:
    """Remove namespaces and links left by runs that died (their pid is gone) or by this process' own
    closed Hosts; never those of a live run. Returns the names removed."""
    namespaces, links = ours()
    namespaces = [n for n in namespaces if _stale(_tag_of(_NAME.match(n)))]
    links = [n for n in links if _stale(_tag_of(_NAME.match(n)))]
    _remove(namespaces, links)
    return namespaces + links


@contextlib.contextmanager
def _global_lock():
    """Serialises subnet choice and creation between concurrent runs on this machine."""
    lockdir = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
    with open(os.path.join(lockdir, "vmqpy-netns.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_subnet(start: int) -> int:
    used = ip_cmd("-4", "-o", "addr", "show", check=False) + ip_cmd("-4", "route", "show", "table", "all",
                                                                         check=False)
    for i in range(254):
        x = (start + i) % 254 + 1
        if f"{SUBNET}.{x}." not in used:
            return x
    raise NetnsError(f"no free {SUBNET}.X.0/24 subnet")


# ---------------------------------------------------------------------------------------------------------
# Link faults.

_loss_method: str | None = None  # "netem" | "nft" once one worked


def _nft_loss_rules(table: str, dev: str, pct: int) -> str:
    """An nftables table dropping `pct` percent of the packets arriving through `dev`. (Dropping what
    leaves would not be silent as netem is: output drops fail the sender's send with EPERM/ENOBUFS.)"""
    share = "" if pct >= 100 else f"numgen random mod 100 < {max(pct, 0)} "  # it is 0..99: `< 100` won't parse
    return (f"table netdev {table} {{\n chain i {{\n"
            f"  type filter hook ingress device \"{dev}\" priority 0; policy accept;\n"
            f"  {share}drop\n }}\n}}\n")


def _loss_unavailable_reason(ns: str, dev: str) -> str | None:
    """Find a way to drop a share of a link's packets: tc netem, else nftables' random numgen."""
    global _loss_method
    if _loss_method:
        return None
    r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "0%"],
                       capture_output=True, text=True)
    if r.returncode != 0 and shutil.which("modprobe"):
        subprocess.run(["modprobe", "sch_netem"], capture_output=True)
        r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "loss",
                            "0%"], capture_output=True, text=True)
    if r.returncode == 0:
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
        _loss_method = "netem"
        return None
    netem_error = f"tc netem: {r.stderr.strip()} (no sch_netem in this kernel)"
    if shutil.which("nft") is None:
        return f"{netem_error}; no `nft` (nftables) either"
    probe = _nft_loss_rules(f"{LOSS_TABLE}_probe", dev, 0)
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=probe, capture_output=True, text=True)
    if r.returncode != 0:
        return f"{netem_error}; nft numgen: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", f"{LOSS_TABLE}_probe"],
                   capture_output=True)
    _loss_method = "nft"
    return None


# ---------------------------------------------------------------------------------------------------------
# Hosts.


class Host:
    """One machine of the test cluster: an address, and a namespace unless in the loopback fallback."""

    def __init__(self, hosts: Hosts, index: int, ip: str, ns: str | None = None, veth: str | None = None,
                 peer: str | None = None) -> None:
        self.hosts = hosts
        self.index = index
        self.ip = ip
        self.ns = ns  # network namespace name, None on loopback
        self.veth = veth  # the veth end inside the namespace
        self.peer = peer  # its other end, a port of the bridge
        self.is_split = False
        self.loss_pct = 0
        self._ports: set[int] = set()

    def __repr__(self) -> str:
        return f"Host({self.ip}{', ns ' + self.ns if self.ns else ''})"

    def run(self, argv: list[str]) -> list[str]:
        """`argv` as a command that runs on this host."""
        return ["ip", "netns", "exec", self.ns, *argv] if self.ns else list(argv)

    def exec(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """subprocess.run of `argv` on this host (capture_output and text unless told otherwise)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(self.run(argv), **kw)

    def port(self, preferred: int = MQTT_PORT) -> int:
        """A TCP port free on this host: `preferred` (or the next unused) in a namespace, any on loopback."""
        if self.ns is None:
            port = free_port(self.ip)
        else:
            port = preferred
            while port in self._ports:
                port += 1
        self._ports.add(port)
        return port

    def require_link_faults(self) -> None:
        if self.ns is None:
            pytest.skip(f"link faults need network namespaces ({self.hosts.fallback_reason}); "
                        "only SIGSTOP (node.pause) works on loopback hosts")

    def _ns_ip(self, *args: str) -> None:
        self.hosts._check_open()
        ip_cmd(*args, ns=self.ns)

    def split(self) -> None:
        """Cut this host off the network (its veth down): nothing gets in or out until heal()."""
        self.require_link_faults()
        self._ns_ip("link", "set", self.veth, "down")
        self.is_split = True

    def heal(self) -> None:
        self.require_link_faults()
        self._ns_ip("link", "set", self.veth, "up")
        self.is_split = False

    def loss(self, pct: float) -> None:
        """A lossy link: tc netem drops `pct` percent of what this host sends; where the kernel has no netem,
        nftables drops that share of what it receives instead (silent to the sender, like netem)."""
        self.require_link_faults()
        self.hosts._check_open()
        reason = _loss_unavailable_reason(self.ns, self.veth)
        if reason:
            pytest.skip(f"packet loss cannot be injected: {reason}")
        self.no_loss()
        if _loss_method == "netem":
            argv = ["tc", "qdisc", "add", "dev", self.veth, "root", "netem", "loss", f"{pct}%"]
            r = subprocess.run(self.run(argv), capture_output=True, text=True)
        else:
            rules = _nft_loss_rules(LOSS_TABLE, self.veth, round(pct))
            r = subprocess.run(self.run(["nft", "-f", "-"]), input=rules, capture_output=True, text=True)
        if r.returncode != 0:
            raise NetnsError(f"loss {pct}% on {self}: {r.stderr.strip()}")
        self.loss_pct = pct

    def no_loss(self) -> None:
        self.require_link_faults()
        if _loss_method == "netem":
            subprocess.run(self.run(["tc", "qdisc", "del", "dev", self.veth, "root"]), capture_output=True)
        elif _loss_method == "nft":
            subprocess.run(self.run(["nft", "delete", "table", "netdev", LOSS_TABLE]), capture_output=True)
        self.loss_pct = 0


class Hosts:
    """n hosts; a context manager that removes everything it made on exit (also when the body fails).

    `netns`: True to require namespaces (NetnsError if they fail), False for loopback, None (default):
    namespaces when possible, else loopback with `fallback_reason` saying why.
    """

    def __init__(self, n: int, netns: bool | None = None) -> None:
        if not 1 <= n <= MAX_HOSTS:
            raise ValueError(f"1..{MAX_HOSTS} hosts, not {n}")
        self.n = n
        self.want_netns = netns
        self.tag = f"{PREFIX}{os.getpid():x}-{next(_counter) % PROBE_K:x}"
        self.bridge: str | None = None
        self.subnet: str | None = None
        self.hosts: list[Host] = []
        self.fallback_reason: str | None = None
        self.closed = False
        self.opened = False
        self._made_netns = False  # something may exist under our tag

    @property
    def netns(self) -> bool:
        return self.bridge is not None

    def __enter__(self) -> Hosts:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, i: int) -> Host:
        return self.hosts[i]

    def __repr__(self) -> str:
        kind = (f"netns {self.tag} on {self.bridge} {self.subnet}" if self.netns
                else f"loopback ({self.fallback_reason})")
        return f"Hosts({self.n}, {kind})"

    def _check_open(self) -> None:
        if self.closed:
            raise NetnsError(f"{self!r} is closed")

    def open(self) -> Hosts:
        assert not self.opened, "a Hosts opens once"
        self.opened = True
        reason = netns_unavailable() if self.want_netns is not False else "netns=False"
        if reason is None:
            try:
                self._open_netns()
                return self
            except (NetnsError, OSError, subprocess.SubprocessError) as e:
                self._remove_all(check=False)
                with _live_lock:
                    _live.pop(self.tag, None)
                self.bridge = None
                self.subnet = None
                self.hosts = []
                reason = f"`ip netns` failed: {e}"
        if self.want_netns:
            raise NetnsError(f"network namespaces required but unavailable: {reason}")
        self.fallback_reason = reason
        self.hosts = [Host(self, i, f"127.0.0.{2 + i}") for i in range(self.n)]
        return self

    def _open_netns(self) -> None:
        with _live_lock:
            _live[self.tag] = self
        self._made_netns = True
        _install_exit_cleanup()
        with _global_lock():
            cleanup_stale()
            leftovers = ours(self.tag)
            _remove(*leftovers)  # a reused pid: this tag cannot be live, it was just made
            x = _free_subnet(os.getpid() + int(self.tag.rsplit("-", 1)[1], 16))
            self.subnet = f"{SUBNET}.{x}.0/24"
            self.bridge = f"{self.tag}b"
            # No netfilter on the bridged frames (a host firewall's FORWARD policy must not drop them).
            r = subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge", "stp_state", "0",
                                "nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                ip_cmd("link", "add", "name", self.bridge, "type", "bridge")
            ip_cmd("addr", "add", f"{SUBNET}.{x}.1/24", "dev", self.bridge)
            ip_cmd("link", "set", self.bridge, "up")
        for i in range(self.n):
            ns, veth, peer = f"{self.tag}-{i:x}", f"{self.tag}n{i:x}", f"{self.tag}h{i:x}"
            ip = f"{SUBNET}.{x}.{FIRST_HOST + i}"
            host = Host(self, i, ip, ns, veth, peer)
            self.hosts.append(host)
            ip_cmd("netns", "add", ns)
            ip_cmd("link", "add", peer, "type", "veth", "peer", "name", veth, "netns", ns)
            ip_cmd("link", "set", peer, "master", self.bridge)
            ip_cmd("link", "set", peer, "up")
            ip_cmd("link", "set", "lo", "up", ns=ns)
            ip_cmd("addr", "add", f"{ip}/24", "dev", veth, ns=ns)
            ip_cmd("link", "set", veth, "up", ns=ns)

    def names(self) -> tuple[list[str], list[str]]:
        """(namespaces, root-namespace links) this Hosts made."""
        if not self.netns:
            return [], []
        return [h.ns for h in self.hosts], [self.bridge, *(h.peer for h in self.hosts)]

    def close(self, check: bool = True) -> None:
        """Kill what runs in the namespaces, delete veths, bridge and namespaces; idempotent.
        With `check`, raises NetnsError if anything of this tag is still there afterwards."""
        if self.closed:
            return
        self.closed = True
        try:
            self._remove_all(check)
        finally:
            with _live_lock:
                _live.pop(self.tag, None)

    def _remove_all(self, check: bool) -> None:
        if not self._made_netns:
            return
        for _ in range(3):
            leftovers = ours(self.tag)
            if not any(leftovers):
                return
            _remove(*leftovers)
        leftovers = ours(self.tag)
        if check and any(leftovers):
            raise NetnsError(f"could not remove {leftovers}")


def _close_all() -> None:
    for hosts in list(_live.values()):
        with contextlib.suppress(Exception):
            hosts.close(check=False)


_exit_cleanup_installed = False


def _install_exit_cleanup() -> None:
    """At interpreter exit, and on SIGTERM (turned into KeyboardInterrupt so that pytest's finalizers
    run), remove whatever is still open."""
    global _exit_cleanup_installed
    if _exit_cleanup_installed:
        return
    _exit_cleanup_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_term(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_term)


# ---------------------------------------------------------------------------------------------------------
# Nodes and clients on hosts.


def cluster_conf(host: Host, cport: int | None = None, cookie: str = "vmqpy-test-cookie") -> dict[str, str]:
    """The cluster keys of a node on `host` (pass them to ClusterNode's conf_overrides)."""
    cport = cport if cport is not None else host.port(44053)
    return {"listener.vmq.clustering": f"{host.ip}:{cport}", "distributed_cookie": cookie}


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, parents first."""
    kids = _children()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree


def process_state(pid: int) -> str | None:
    """The state letter of /proc/pid/stat (R, S, T, Z, ...), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class ClusterNode(Broker):
    """A node on `host`: nodename node{index}@{ip}, MQTT on {ip}:{port}, run in the host's namespace."""

    def __init__(self, host: Host, root_dir: Path, index: int, conf_overrides: dict[str, str] | None = None,
                 port: int | None = None, acl: str = "topic #\n") -> None:
        self.host = host
        self.index = index
        self.nodename = f"node{index}@{host.ip}"
        conf = {"nodename": self.nodename, **(conf_overrides or {})}
        super().__init__(Path(root_dir) / f"node{index}", conf, acl, host=host.ip,
                         port=port if port is not None else host.port(MQTT_PORT), argv_prefix=host.run([]))
        self._paused: list[int] = []

    def __repr__(self) -> str:
        return f"ClusterNode({self.nodename}, mqtt {self.mqtt_host}:{self.port})"

    @property
    def address(self) -> tuple[str, int]:
        return self.mqtt_host, self.port

    def start(self) -> ClusterNode:
        super().start()
        # `ip netns exec` execs the node, so the pid we hold is the node's (what pause/kill act on).
        cmdline = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"vmqpy.scripts.vernemq" in cmdline, cmdline
        return self

    def client(self, client_id: str = "", **kw) -> HostPaho:
        return HostPaho(self.mqtt_host, self.port, client_id, **kw)

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    def pause(self) -> None:
        """SIGSTOP the node and its children (parent first, so it never sees a stopped child); returns once
        all of them are stopped."""
        assert self.proc is not None and self.proc.poll() is None, "node not running"
        pids = process_tree(self.proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self._paused = pids
        wait_until(lambda: all(process_state(p) in ("T", None) for p in pids), 5.0, "processes to stop")

    def resume(self) -> None:
        """SIGCONT them, children first."""
        pids = list(self._paused)
        if self.proc is not None and self.proc.poll() is None:
            pids += [p for p in process_tree(self.proc.pid) if p not in pids]
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._paused = []

    def stop(self, timeout: float = 30.0) -> int:
        if self._paused:
            self.resume()
        return super().stop(timeout)

    def kill(self) -> None:
        """SIGKILL the node and its children at once (a host crash)."""
        if self.proc is not None and self.proc.poll() is None:
            for pid in process_tree(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        self._paused = []

    def restart(self, crash: bool = False) -> ClusterNode:
        """Stop (or SIGKILL with `crash`) and start again on the same data dir, ports and config."""
        self.kill() if crash else self.stop()
        return self.start()


class HostPaho(Paho):
    """clients.Paho connecting to a host's address instead of 127.0.0.1."""

    def __init__(self, host_ip: str, port: int, client_id: str = "", **kw) -> None:
        super().__init__(port, client_id, **kw)
        self.host_ip = host_ip

    def connect(self, properties=None, expect_ok: bool = True, timeout: float = TIMEOUT):
        kwargs = {"clean_start": self.clean, "properties": properties} if self.version == V5 else {}
        self.c.connect(self.host_ip, self.port, self.keepalive, **kwargs)
        self.c.loop_start()
        rc, flags, props = self.connack.get(timeout=timeout)
        if expect_ok:
            assert not rc.is_failure, f"CONNACK {rc}"
        return rc, flags, props


def reachable(ip: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ip:port can be made from the test process."""
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
        return True
    except OSError:
        return False
