"""Helpers of the bridge tests: a real mosquitto on a free port (restartable on that port, with its
sessions kept on disk over a graceful restart), the config of a bridge, its row in bridge show."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from broker import free_port, wait_until
from pki import Pki

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """mosquitto -c CONF; `stop()` is graceful (it saves its sessions), `start()` again keeps the port."""

    def __init__(self, root: Path, pki: Pki | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if pki else None  # a TLS listener besides the plain one for test clients
        tls = (f"listener {self.tls_port} 127.0.0.1\ncafile {pki.ca}\ncertfile {pki.server_cert}\n"
               f"keyfile {pki.server_key}\n" if pki else "")
        (root / "mosquitto.conf").write_text(
            # as root mosquitto would switch to its own user, who can read neither our keys nor our dir
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{tls}allow_anonymous true\n"
            f"persistence true\npersistence_location {root}/\nmax_queued_messages 0\n"
            f"max_inflight_messages 100\nlog_dest file {root}/mosquitto.log\nlog_type all\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.root / "mosquitto.conf")], cwd=self.root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, 10, "mosquitto listening")
        return self

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def log(self) -> str:
        path = self.root / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def bridge_conf(port: int, *topics: str, name: str = "br0", kind: str = "tcp", **opts: str) -> dict[str, str]:
    """The config lines of bridge `name` to 127.0.0.1:port carrying `topics`; reconnects after 1 s."""
    key = f"vmq_bridge.{kind}.{name}"
    conf = {"plugins.vmq_bridge": "on", key: f"127.0.0.1:{port}", f"{key}.restart_timeout": "1"}
    conf.update({f"{key}.topic.{n}": f'"{t}"' for n, t in enumerate(topics, 1)})
    conf.update({f"{key}.{k}": v for k, v in opts.items()})
    return conf


def bridge_row(node, name: str = "br0") -> dict[str, str]:
    return next(r for r in node.rows("bridge", "show") if r["name"] == name)


def wait_connected(node, name: str = "br0") -> None:
    """Until the bridge is connected and the remote broker acknowledged its subscriptions."""
    wait_until(lambda: bridge_row(node, name)["status"] == "connected", 20, f"bridge {name} connected")
