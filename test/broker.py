"""A real vmqpy node for tests: its own config, ports, data dir and process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll `predicate` with a short backoff until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Broker:
    """A node started as `python -m vmqpy.scripts.vernemq console --config F`.

    `host`/`port`: the MQTT listener's address (default 127.0.0.1 and a free port); `argv_prefix` is put
    before the node's command (e.g. `ip netns exec NS` to run it in a network namespace).
    """

    def __init__(self, root: Path, conf: dict[str, str] | None = None, acl: str = "topic #\n", *,
                 host: str = "127.0.0.1", port: int | None = None, argv_prefix: list[str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.mqtt_host = host
        self.port = port if port is not None else free_port(host)
        self.argv_prefix = list(argv_prefix or [])
        # Unix socket paths are limited to 108 bytes: keep the admin socket short.
        self._sockdir = tempfile.mkdtemp(prefix="vmq")
        self.admin_socket = os.path.join(self._sockdir, "s")
        (self.root / "vmq.acl").write_text(acl)
        (self.root / "vmq.passwd").touch()
        self.conf = {
            "nodename": "VerneMQ@127.0.0.1",
            "listener.tcp.default": f"{host}:{self.port}",
            "allow_anonymous": "on",
            "nr_of_workers": "1",  # one process unless a test asks for workers (the default is one per core)
            "platform_data_dir": str(self.root / "data"),
            "platform_log_dir": str(self.root / "log"),
            "admin.socket": self.admin_socket,
            "log.console": "both",
            "log.console.level": "info",
            "vmq_acl.acl_file": str(self.root / "vmq.acl"),
            "vmq_passwd.password_file": str(self.root / "vmq.passwd"),
        }
        self.conf.update(conf or {})
        self.conf_path = self.root / "vernemq.conf"
        self.proc: subprocess.Popen | None = None

    def write_conf(self) -> None:
        self.conf_path.write_text("".join(f"{k} = {v}\n" for k, v in self.conf.items()))

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "console.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def start(self) -> Broker:
        self.write_conf()
        out = open(self.root / "stdout.log", "ab")
        self.proc = subprocess.Popen([*self.argv_prefix, sys.executable, "-m", "vmqpy.scripts.vernemq", "--config",
                                      str(self.conf_path), "console"], cwd=REPO, stdout=out,
                                     stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.proc.poll() is not None or self.ping(), START_TIMEOUT, "node start")
        except TimeoutError:
            self.kill()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.output()}")
        return self

    def output(self) -> str:
        return (self.root / "stdout.log").read_text()

    def ping(self) -> bool:
        from vmqpy.admin.rpc import ping

        return ping(self.admin_socket, timeout=1.0)

    def admin(self, *argv: str) -> tuple[bool, str]:
        from vmqpy.admin.rpc import call

        return call(self.admin_socket, list(argv))

    def metrics(self) -> dict[str, float]:
        """`vmq-admin metrics show` as {name: value} (without the counter./gauge. prefix)."""
        ok, out = self.admin("metrics", "show")
        assert ok, out
        return {k.split(".", 1)[-1]: float(v) for k, _, v in (line.partition(" = ") for line in out.splitlines())
                if v}

    def rows(self, *argv: str) -> list[dict[str, str]]:
        """A vmq-admin table (VerneMQ's framed layout) as one dict per row; the command must succeed."""
        ok, out = self.admin(*argv)
        assert ok, out
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
                 if line.startswith("|")]
        return [dict(zip(cells[0], row, strict=True)) for row in cells[1:]]

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (SIGTERM), as `vernemq stop` does through the admin socket."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self._sockdir, ignore_errors=True)
