"""Start endpoint_app.py under gunicorn on an ephemeral port and talk to its control API.

Shared by the unit tests (plugin in-process) and the end-to-end tests (plugin in a node).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import gunicorn.config

APP_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 20.0


@contextmanager
def serve(workdir: Path, tls: tuple[str, str, str] | None = None) -> Iterator[str]:
    """Base URL of a gunicorn-served endpoint app (one gevent worker); stopped on exit.
    `tls`: (certfile, keyfile, cafile): https, and a client certificate the cafile verifies is required."""
    log = workdir / "gunicorn.log"
    log.touch()
    cmd = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "-b", "127.0.0.1:0",
           "--keep-alive", "1", "--chdir", str(APP_DIR), "--error-logfile", str(log)]
    if tls is not None:
        cmd += ["--certfile", tls[0], "--keyfile", tls[1], "--ca-certs", tls[2], "--cert-reqs", "2"]
    if any(s.name == "control_socket_disable" for s in gunicorn.config.KNOWN_SETTINGS):
        cmd.append("--no-control-socket")  # gunicorn >= 25 would share one socket path
    proc = subprocess.Popen(cmd + ["endpoint_app:app"])
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := re.search(r"Listening at: (https?://[\d.:]+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)
        url = found.group(1)
        while True:  # the worker accepts a little after the master listens
            try:
                _open(url + "/_requests", tls)
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn worker did not accept"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _open(url: str, tls: tuple[str, str, str] | None) -> bytes:
    if tls is None:
        return urllib.request.urlopen(url, timeout=1).read()
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=tls[2])
    ctx.load_cert_chain(tls[0], tls[1])  # the server's own certificate is one its CA signed
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=1) as raw, ctx.wrap_socket(raw, server_hostname=host):
        return b""


def control(url: str, path: str, data=None, method: str = "GET"):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url + path, data=body, method=method)
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


def reset(url: str) -> None:
    control(url, "/_reset", {}, "POST")


def rules(url: str, *rules: dict) -> None:
    control(url, "/_rules", list(rules), "PUT")


def received(url: str, n: int | None = None, timeout: float = 5.0) -> list[dict]:
    """Recorded hook requests (waits until there are at least n; gevent.sleep lets in-process
    event greenlets run and is a plain sleep elsewhere)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [r for r in control(url, "/_requests") if not r["path"].startswith("/_")]
        if n is None or len(got) >= n or time.monotonic() > deadline:
            return got
        gevent.sleep(0.02)
