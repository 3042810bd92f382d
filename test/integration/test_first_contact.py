"""What a new user meets first: `make`, a missing ACL file, a plugin that does not load, ping at start."""

from __future__ import annotations

import re
import socket
import subprocess
import threading

import pytest
from broker import REPO, Broker, free_port, wait_until

VERNEMQ = str(REPO / "bin" / "vernemq")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # the node's log (log.console = both)


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([VERNEMQ, *args], capture_output=True, text=True, timeout=timeout)


def said(out: subprocess.CompletedProcess, text: str) -> list[str]:
    """The lines of stderr holding `text` that the script printed (not the node's log lines)."""
    return [line for line in out.stderr.splitlines() if text in line and not LOG_LINE.match(line)]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class PortWatch:
    """Counts the connections a port accepts while a command runs (a thread connecting in a loop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            self.accepted += accepts(self.port)

    def __enter__(self) -> PortWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def test_make_prepares_the_venv_and_the_release_is_make_rel():
    out = subprocess.run(["make", "-pn", "-C", str(REPO)], capture_output=True, text=True, timeout=60)
    assert ".DEFAULT_GOAL := all" in out.stdout
    all_rule = out.stdout.split("\nall: ", 1)[1].split("\n", 1)[0]
    assert ".venv/.installed" in all_rule and "rel" not in all_rule


@pytest.mark.parametrize("command", ["console", "chkconfig"])
def test_a_missing_acl_file_refuses_the_start_naming_the_file_and_both_ways_out(tmp_path, command):
    node = Broker(tmp_path)
    node.write_conf()
    acl = node.root / "vmq.acl"
    acl.unlink()
    out = run("--config", str(node.conf_path), command, timeout=30)
    node.cleanup()
    assert out.returncode == 1
    assert str(acl) in out.stderr
    assert "create it" in out.stderr and "plugins.vmq_acl = off" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_with_vmq_acl_off_no_acl_file_is_needed(tmp_path):
    node = Broker(tmp_path, {"plugins.vmq_acl": "off"})
    node.write_conf()
    (node.root / "vmq.acl").unlink()
    out = run("--config", str(node.conf_path), "chkconfig")
    node.cleanup()
    assert out.returncode == 0, out.stderr


def fails_with_one_line(node: Broker, needle: str, expected: str) -> None:
    """The node started from `node`'s config exits 1 with one error line holding `expected`, no
    traceback, and no connection ever accepted on its MQTT port."""
    node.write_conf()
    with PortWatch(node.port) as watch:
        out = run("--config", str(node.conf_path), "console", timeout=60)
    node.cleanup()
    assert out.returncode == 1
    errors = said(out, needle)
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert watch.accepted == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_plugin_that_does_not_load_gives_one_line_and_no_open_port(tmp_path, workers):
    fails_with_one_line(Broker(tmp_path, {"plugins.nosuch": "on", "nr_of_workers": workers}),
                        "nosuch", "plugins.nosuch")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_plugin_that_fails_in_its_start_gives_one_line_and_no_open_port(tmp_path, workers):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("def start(settings, ctx):\n    raise RuntimeError('no backend here')\n")
    fails_with_one_line(Broker(tmp_path / "node", {"plugins.broken": "on", "plugins.broken.path": str(plugins),
                                                   "nr_of_workers": workers}),
                        "no backend here", "failed to start")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ping_answers_pong_as_soon_as_the_port_accepts(tmp_path, workers):
    node = Broker(tmp_path, {"nr_of_workers": workers})
    node.write_conf()
    proc = subprocess.Popen([VERNEMQ, "--config", str(node.conf_path), "console"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: accepts(node.port), 60, "the MQTT port to accept")
        ping = run("--config", str(node.conf_path), "ping")
        assert (ping.returncode, ping.stdout.strip()) == (0, "pong")
    finally:
        proc.terminate()
        proc.wait(60)
        node.cleanup()


def test_a_listener_that_a_worker_cannot_start_gives_one_line_and_no_open_port(tmp_path):
    """What the config check cannot see (a TLS file gone) is found by the workers as they start."""
    node = Broker(tmp_path, {"nr_of_workers": "2", "listener.ssl.default": f"127.0.0.1:{free_port()}",
                             "listener.ssl.default.certfile": str(tmp_path / "gone.pem"),
                             "listener.ssl.default.keyfile": str(tmp_path / "gone.key")})
    node.write_conf()
    with PortWatch(node.port) as watch:
        out = run("--config", str(node.conf_path), "console", timeout=60)
    node.cleanup()
    assert out.returncode == 1
    errors = said(out, "failed to start")
    assert len(errors) == 1 and "listener ssl.default: TLS" in errors[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert watch.accepted == 0
