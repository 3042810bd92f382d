"""nr_of_workers > 1: a supervising parent and its worker processes (docs/workers.md).

The parent (`vernemq console`) binds the MQTT listeners and the admin socket,
starts the workers (`python -m vmqpy.cluster.workers`, the bound fds
inherited), restarts a worker that dies, and stops them all on `stop`. The MQTT
sockets listen only once every worker is ready: then the parent is ready (ping
answers pong) and tells each worker, over its control socket, to accept. A
node that cannot start never accepted a connection. A worker that fails to
start sends its one-line reason on the control socket; the parent exits with it. A worker is a Node with its
own data directories (data/worker-K/...) and admin socket, linked to the
others (cluster/runtime.py, cluster/links.py).

`Supervisor` has a Node's lifecycle interface (start, stop, stopped), so
`vernemq console` runs either.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import gevent
from gevent.event import Event

from vmqpy.broker.listeners import MQTT_KINDS, bind
from vmqpy.cluster.limits import ConnectionTable
from vmqpy.cluster.partitions import worker_path
from vmqpy.cluster.subscribe_clock import SubscribeClock
from vmqpy.config_schema import CLUSTER_KINDS

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
BACKLOG = 1024
RESTART_BACKOFF = (0.1, 5.0)
STABLE_AFTER = 30.0  # a worker up this long restarts without backoff next time


def link_paths(cfg, count: int) -> list[str]:
    """Each worker's link socket, next to the admin socket (whose directory is the node's own)."""
    return [f"{cfg['admin.socket']}.w{k}.link" for k in range(count)]


def worker_config(cfg, index: int):
    """`cfg` for worker `index`: its own data directories and admin socket."""
    overrides = {"admin.socket": f"{cfg['admin.socket']}.w{index}"}
    for key in ("metadata.dir", "message_store.dir"):
        overrides[key] = worker_path(cfg[key], index)
    cfg.override(overrides)
    return cfg


class WorkerProc:
    """One worker slot: its current process, readiness and restarts."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None  # our end of its control socket, while it runs
        self.ready = False
        self.error: str | None = None  # why it could not start, as it said
        self.restarts = 0

    def accept(self) -> None:
        """Tell the worker that the node listens: it accepts connections from now on."""
        try:
            self.control.sendall(b"accept\n")
        except (OSError, AttributeError):
            pass  # gone meanwhile: its restart is told again


class Supervisor:
    def __init__(self, cfg) -> None:
        self.config = cfg
        self.name: str = cfg["nodename"]
        self.count: int = cfg["nr_of_workers"]
        self.link_paths = link_paths(cfg, self.count)
        self.workers = [WorkerProc(k) for k in range(self.count)]
        self.sockets: dict[str, socket.socket] = {}
        self.connections: ConnectionTable | None = None  # per worker and listener (cluster/limits.py)
        self.clock_fd: int | None = None  # SUBSCRIBEs read per worker (cluster/subscribe_clock.py)
        self.stopped = Event()
        self.stopping = False
        self.admin = None
        self._changed = Event()
        self._failed: str | None = None
        self._started = False
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def ready(self) -> bool:
        return not self.stopping and self._started and all(w.ready for w in self.workers)

    def describe(self) -> list[dict]:
        return [{"worker": w.index, "pid": w.proc.pid if w.proc else "", "ready": w.ready,
                 "restarts": w.restarts} for w in self.workers]

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        from vmqpy.cluster.parent_admin import ParentAdmin

        self._bind_listeners()
        self.connections = ConnectionTable.create(self.count, list(self.sockets))
        self.clock_fd = SubscribeClock.create(self.count)
        self.admin = ParentAdmin(self)
        self.admin.start()
        self._greenlets = [gevent.spawn(self._supervise, w) for w in self.workers]
        deadline = time.monotonic() + START_TIMEOUT
        while not all(w.ready for w in self.workers):
            if self._failed or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(self._failed or f"workers not ready within {START_TIMEOUT:.0f}s")
            self._changed.wait(max(0.0, deadline - time.monotonic()))
            self._changed.clear()
        for key, sock in self.sockets.items():
            if key.split(".")[0] in MQTT_KINDS:
                sock.listen(BACKLOG)
        self._started = True  # ready: ping says pong as the ports accept
        for w in self.workers:
            w.accept()
        log.info("node %s started with %d workers", self.name, self.count)

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("node %s stopping its %d workers", self.name, self.count)
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %ss: killed", p.pid, STOP_TIMEOUT)
                p.kill()
                p.wait()
        gevent.killall(self._greenlets)  # before the connection table they write to is closed
        for s in self.sockets.values():
            s.close()
        if self.connections is not None:
            self.connections.close()
        if self.clock_fd is not None:
            os.close(self.clock_fd)
        if self.admin is not None:
            self.admin.stop()
        self.stopped.set()
        log.info("node %s stopped", self.name)

    def _bind_listeners(self) -> None:
        for spec in self.config.listeners:
            if spec.kind not in MQTT_KINDS and spec.kind not in CLUSTER_KINDS:  # vmq(s): other nodes' links
                continue
            sock = bind(spec, None if spec.kind in MQTT_KINDS else BACKLOG)  # MQTT: listen once ready
            sock.set_inheritable(True)
            self.sockets[f"{spec.kind}.{spec.name}"] = sock

    # -- one greenlet per worker slot -----------------------------------------
    def _supervise(self, w: WorkerProc) -> None:
        delay = RESTART_BACKOFF[0]
        while not self.stopping:
            started = time.monotonic()
            self._run_once(w)
            if self.stopping:
                return
            code = w.proc.returncode
            if not self._started:
                self._failed = f"worker {w.index}: {w.error}" if w.error else (
                    f"worker {w.index} exited with {code} while starting")
                self._changed.set()
                return
            w.restarts += 1
            log.error("worker %d (pid %d) exited with %s: restarting", w.index, w.proc.pid, code)
            delay = RESTART_BACKOFF[0] if time.monotonic() - started > STABLE_AFTER else delay
            gevent.sleep(delay)  # a worker that dies at once must not spin the parent
            delay = min(delay * 2, RESTART_BACKOFF[1])

    def _run_once(self, w: WorkerProc) -> bool:
        """Start the worker, follow it until it exits; True if it became ready."""
        mine, theirs = socket.socketpair()
        fds = {key: s.fileno() for key, s in self.sockets.items()}
        table = self.connections.fd
        argv = [sys.executable, "-m", "vmqpy.cluster.workers", "--config", os.path.abspath(self.config.path),
                "--index", str(w.index), "--count", str(self.count), "--control", str(theirs.fileno()),
                "--connections", str(table), "--clock", str(self.clock_fd),
                *[f"--listen={key}={fd}" for key, fd in fds.items()]]
        w.proc = subprocess.Popen(argv, pass_fds=[theirs.fileno(), table, self.clock_fd, *fds.values()])
        theirs.close()
        w.control, w.error = mine, None
        ready = False
        try:
            for line in mine.makefile("rb"):  # b"ready\n" or b"error WHY\n" once; EOF when it exits
                if line.startswith(b"error "):
                    w.error = line[6:].decode(errors="replace").strip()
                    continue
                ready = w.ready = True
                if self._started:  # a restarted worker: the node listens already
                    w.accept()
                self._changed.set()
        except OSError:
            pass
        finally:
            w.control = None
            mine.close()
            w.ready = False
            self._changed.set()
        w.proc.wait()
        self.connections.clear(w.index)  # its connections ended with it
        return ready


# -- the worker process -------------------------------------------------------------------------------------

def worker_main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser(prog="vmqpy-worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--clock", type=int, required=True)
    parser.add_argument("--listen", action="append", default=[])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us

    from vmqpy import config
    from vmqpy import log as vlog
    from vmqpy.assembly import node_with_services, start
    from vmqpy.cluster.runtime import WorkerRuntime

    cfg = config.load(args.config)
    paths = link_paths(cfg, args.count)
    worker_config(cfg, args.index)
    vlog.setup(cfg)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Tag(args.index))
    listen_fds = {key: int(fd) for key, _, fd in (item.rpartition("=") for item in args.listen)}
    control = socket.socket(fileno=args.control)
    table = ConnectionTable(args.connections, args.count, list(listen_fds))
    clock = SubscribeClock(args.clock, args.count, args.index)
    node = node_with_services(cfg, lambda n: WorkerRuntime(n, args.index, args.count, listen_fds, paths, table,
                                                           clock))
    runtime = node.cluster
    try:
        start(node)
    except Exception as e:  # one line for the parent to report, not a traceback per worker
        log.debug("worker %d failed to start", args.index, exc_info=True)
        control.sendall(f"error {e}".replace("\n", " ").encode() + b"\n")
        return 1
    runtime.wait_synced(None)
    control.sendall(b"ready\n")
    stop = Event()  # SIGTERM from the parent, or the parent is gone
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.spawn(_follow_parent, control, node, stop)
    stop.wait()
    node.stop()
    return 0


def _follow_parent(control: socket.socket, node, stop: Event) -> None:
    """The parent writes `accept` once the node listens; EOF means it is gone, and a worker without a
    parent stops."""
    try:
        for line in control.makefile("rb"):
            if line == b"accept\n":
                node.listeners.accept_all()
    except OSError:
        pass
    stop.set()


class _Tag(logging.Filter):
    """Log lines name the worker: `vmqpy.broker.session[w1]`."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.suffix = f"[w{index}]"

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.endswith(self.suffix):
            record.name += self.suffix
        return True


if __name__ == "__main__":
    sys.exit(worker_main())
