"""Helpers of the packaging tests: building with the make targets, running commands, free ports, chroots."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
VERSION = re.search(r'__version__ = "([^"]+)"', (SRC / "vmqpy/__init__.py").read_text())[1]
REL_DIR = SRC / "_build/rel/vernemq"
PKG_DIR = SRC / "_build/packages"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot, debootstrap and rpm --root need root")

CHROOT_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"]
LISTENER = re.compile(r"^(listener\.[a-z0-9_]+\.[A-Za-z0-9_]+)\s*=\s*\S+:\d+\s*$", re.M)


def run(cmd, *, timeout=600, check=True, env=None, cwd=SRC, input=None):
    """Run cmd with its output in temporary files, not pipes: a daemon that
    keeps inherited pipes open would otherwise hang the wait."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, env=env, cwd=cwd, input=input, text=True)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    if check and result.returncode:
        raise AssertionError(
            f"{cmd} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def make(*targets, **variables):
    """The make targets as `make rel|deb|rpm`; rel/Makefile.inc directly while
    the top-level Makefile does not include it yet."""
    top = SRC / "Makefile"
    makefile = [] if top.exists() and "rel/Makefile.inc" in top.read_text() else ["-f", "rel/Makefile.inc"]
    env = {**os.environ, **variables}
    return run(["make", *makefile, *targets], env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_free_ports(conf: Path) -> dict[str, int]:
    """Bind every listener in conf to 127.0.0.1 on a free port: never a fixed
    port, other brokers may run on this machine. Returns {key: port}."""
    ports = {}

    def rebind(m):
        ports[m[1]] = free_port()
        return f"{m[1]} = 127.0.0.1:{ports[m[1]]}"

    text = LISTENER.sub(rebind, conf.read_text())
    if "listener.tcp.default" not in ports:
        ports["listener.tcp.default"] = free_port()
        text += f"\nlistener.tcp.default = 127.0.0.1:{ports['listener.tcp.default']}\n"
    conf.write_text(text)
    return ports


def conf_value(conf: Path, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}\s*=\s*(.*?)\s*$", conf.read_text(), re.M)
    return m and m[1]


class Chroot:
    """A throwaway copy of the Debian root, with /proc mounted, that commands run in."""

    def __init__(self, base: Path, root: Path):
        self.root = root
        run(["cp", "-a", str(base), str(root)])
        run(["mount", "-t", "proc", "proc", str(root / "proc")])

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def argv(self, command: str) -> list[str]:
        return ["chroot", str(self.root), "env", "-i", *CHROOT_ENV, "sh", "-c", command]

    def sh(self, command: str, *, check=True, timeout=120, input=None):
        return run(self.argv(command), check=check, timeout=timeout, input=input)

    def popen(self, command: str):
        return subprocess.Popen(self.argv(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def pids(self) -> list[int]:
        """Processes whose root is this chroot (a node left running)."""
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and os.readlink(proc / "root") == str(self.root):
                    found.append(int(proc.name))
            except OSError:
                pass
        return found

    def destroy(self):
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        proc = self.root / "proc"
        for _ in range(50):
            if not os.path.ismount(proc):
                break
            subprocess.run(["umount", str(proc)], check=False)
            time.sleep(0.1)
        if not os.path.ismount(proc):  # never delete through a live mount
            shutil.rmtree(self.root, ignore_errors=True)
