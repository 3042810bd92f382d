"""The local admin socket that `vernemq` and `vmq-admin` talk to.

One request per connection: the client sends a JSON line {"argv": [...]},
the node answers one JSON line {"ok": bool, "output": str} and closes.
Only processes that can open the socket file (mode 0600, the node's user)
can administer the node.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

import ujson
from gevent.server import StreamServer

from vmqpy.admin import store_commands  # noqa: F401  (registers the store commands)
from vmqpy.admin.commands import Result, formatted, run_command

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20


class AdminServer:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.path: str = node.config["admin.socket"]
        self.server: StreamServer | None = None

    def start(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            if ping(self.path, timeout=1.0):
                raise RuntimeError(f"another node is running with admin socket {self.path}")
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_umask)
        listener.listen(16)
        self.server = StreamServer(listener, self._handle)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _handle(self, sock: socket.socket, _addr) -> None:
        sock.settimeout(30)
        f = sock.makefile("rb")
        try:
            line = f.readline(MAX_REQUEST)
            ok, output = formatted([str(a) for a in ujson.loads(line)["argv"]], self.command)
        except (ValueError, KeyError, TypeError) as e:
            ok, output = False, f"bad admin request: {e}"
        except OSError:
            return
        try:
            sock.sendall(ujson.dumps({"ok": ok, "output": output}).encode() + b"\n")
        except OSError:
            pass


    def command(self, argv: list[str]) -> Result:
        return run_command(self.node, argv)


def call(path: str, argv: list[str], timeout: float = 30.0) -> tuple[bool, str]:
    """Send one command to the node behind `path` (blocking; used by the scripts)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(ujson.dumps({"argv": argv}).encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = ujson.loads(b"".join(chunks))
    return reply["ok"], reply["output"]


def ping(path: str, timeout: float = 5.0) -> bool:
    try:
        ok, out = call(path, ["ping"], timeout)
    except (OSError, ValueError, KeyError):
        return False
    return ok and out == "pong"
