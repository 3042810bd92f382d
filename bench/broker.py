"""Start and stop a broker under test on a free loopback port, pinned to one core.

mosquitto gets a temp config; vmqpy gets a vernemq.conf written from the keys
in vmqpy/config_schema.py. Both keep their per-client defaults (20 in-flight
messages to a subscriber) but get the same large online queue so that a
max-rate run measures speed, not a queue limit. aedes (optional, installed by
`make bench-peers`) runs with its defaults.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUEUE_LIMIT = 100_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (a launcher script may fork the node)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            out += process_tree(int(kid))
    return out


def _proc_values(pids: list[int], read) -> list:
    out = []
    for pid in pids:
        try:
            out.append(read(pid))
        except (OSError, IndexError, ValueError, StopIteration):
            pass  # the process ended between listing and reading
    return out


def rss_kib(pids: list[int]) -> int:
    """Summed VmRSS (KiB) of the processes, from /proc/PID/status."""
    def read(pid: int) -> int:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if x.startswith("VmRSS:"))
        return int(line.split()[1])
    return sum(_proc_values(pids, read))


def cpu_s(pids: list[int]) -> float:
    """Summed user+system CPU seconds of the processes."""
    def read(pid: int) -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    return sum(_proc_values(pids, read)) / CLK_TCK


@dataclass
class Broker:
    name: str
    port: int
    proc: subprocess.Popen
    tmpdir: str
    log: Path
    pinned: str | None = None
    extra: dict = field(default_factory=dict)
    host: str = "127.0.0.1"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _wait_listening(broker: Broker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.proc.poll() is not None:
            break
        try:
            socket.create_connection((broker.host, broker.port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    tail = broker.log.read_text(errors="replace")[-2000:] if broker.log.exists() else ""
    broker.stop()
    raise RuntimeError(f"{broker.name} did not listen on {broker.port}:\n{tail}")


def _spawn(name: str, cmd: list[str], tmpdir: str, port: int, core: str | None,
           timeout: float, host: str = "127.0.0.1") -> Broker:
    if core is not None:
        cmd = ["taskset", "-c", core, *cmd]
    log = Path(tmpdir) / "broker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmpdir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    broker = Broker(name, port, proc, tmpdir, log, core, host=host)
    _wait_listening(broker, timeout)
    return broker


def start_mosquitto(core: str | None = "0", exe: str = "mosquitto") -> Broker:
    tmpdir, port = tempfile.mkdtemp(prefix="bench-mosq-"), free_port()
    conf = Path(tmpdir) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_queued_messages {QUEUE_LIMIT}\nlog_dest stdout\n"
                    "log_type error\nlog_type warning\n")
    return _spawn("mosquitto", [exe, "-c", str(conf)], tmpdir, port, core, 10)


def vmqpy_config(port: int, tmpdir: str, workers: int = 1, host: str = "127.0.0.1",
                 extra: tuple[str, ...] = ()) -> str:
    """The vernemq.conf the benchmark runs vmqpy with: the default configuration.

    As shipped: vmq_passwd and vmq_acl loaded (an empty password file, an ACL
    of `topic #` that allows everything), allow_anonymous on, $SYS and an HTTP
    listener serving /metrics. Only the online queue is raised, as for mosquitto, and
    the MQTT listener's max_connections (10,000 by default, as in VerneMQ) is
    infinity, as mosquitto's, so `idle` can hold more than 10,000 connections.
    `nr_of_workers` is `workers` (the shipped default is one per core; docs/workers.md).
    `host` and `extra` lines: a cluster node (bench/cluster_bench.py).
    """
    etc = Path(tmpdir) / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "vmq.acl").write_text("topic #\n")
    (etc / "vmq.passwd").write_text("")
    return "\n".join([
        f"nodename = bench{port}@{host}",
        f"listener.tcp.default = {host}:{port}",
        "listener.tcp.default.max_connections = infinity",
        f"listener.http.default = 127.0.0.1:{free_port()}",
        "allow_anonymous = on",
        "plugins.vmq_passwd = on",
        "plugins.vmq_acl = on",
        f"max_online_messages = {QUEUE_LIMIT}",
        f"platform_etc_dir = {etc}",
        f"platform_data_dir = {tmpdir}/data",
        f"platform_log_dir = {tmpdir}/log",
        f"nr_of_workers = {workers}",
        *extra,
        "",
    ])


PEERS = Path(__file__).resolve().parent / "peers"


def start_aedes(core: str | None = "0") -> Broker:
    """aedes (Node.js), as installed under bench/peers by `make bench-peers`."""
    if not (PEERS / "node_modules" / "aedes").is_dir():
        raise RuntimeError("aedes is not installed: run `make bench-peers` (needs node and npm)")
    tmpdir, port = tempfile.mkdtemp(prefix="bench-aedes-"), free_port()
    return _spawn("aedes", ["node", str(PEERS / "aedes_server.mjs"), str(port)], tmpdir, port, core, 30)


def start_vmqpy(core: str | None = "0", cmd: list[str] | None = None, workers: int = 1, host: str = "127.0.0.1",
                extra: tuple[str, ...] = ()) -> Broker:
    tmpdir, port = tempfile.mkdtemp(prefix="bench-vmqpy-"), free_port()
    conf = Path(tmpdir) / "vernemq.conf"
    conf.write_text(vmqpy_config(port, tmpdir, workers, host, extra))
    base = cmd or [str(REPO / ".venv/bin/python"), "-m", "vmqpy.scripts.vernemq"]
    broker = _spawn("vmqpy", [*base, "console", "--config", str(conf)], tmpdir, port, core, 60, host)
    broker.extra["conf"] = str(conf)
    if workers > 1:  # the port listens once every worker is ready: pong at once, checked all the same
        _wait_ping(broker, [*base, "ping", "--config", str(conf)], 120)
    return broker


def _wait_ping(broker: Broker, cmd: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and broker.proc.poll() is None:
        if subprocess.run(cmd, cwd=broker.tmpdir, capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.5)
    tail = broker.log.read_text(errors="replace")[-2000:] if broker.log.exists() else ""
    broker.stop()
    raise RuntimeError(f"{broker.name}: not every worker ready within {timeout}s:\n{tail}")


STARTERS = {"mosquitto": start_mosquitto, "vmqpy": start_vmqpy, "aedes": start_aedes}
