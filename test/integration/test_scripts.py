"""The operator's scripts: vernemq start|ping|stop|chkconfig|version, and config errors."""

from __future__ import annotations

import subprocess

from broker import REPO, Broker
from clients import Paho

from vmqpy import __version__

VERNEMQ = str(REPO / "bin" / "vernemq")


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([VERNEMQ, *args], capture_output=True, text=True, timeout=timeout)


def test_start_ping_stop(tmp_path, cid):
    node = Broker(tmp_path)
    node.write_conf()
    conf = str(node.conf_path)
    try:
        started = run("--config", conf, "start")
        assert started.returncode == 0, started.stderr
        ping = run("--config", conf, "ping")
        assert (ping.returncode, ping.stdout.strip()) == (0, "pong")
        pid = run("--config", conf, "getpid").stdout.strip()
        assert pid.isdigit()
        client = Paho(node.port, cid)
        client.connect()
        client.subscribe("scripts/x", 1)
        client.publish("scripts/x", "up", 1)
        assert client.expect(1)[0].payload == b"up"
        again = run("--config", conf, "start")
        assert again.returncode == 1 and "already running" in again.stdout
        stopped = run("--config", conf, "stop")
        assert stopped.returncode == 0, stopped.stderr
        client.disconnected.wait(10)
        assert client.disconnected.is_set()
        ping = run("--config", conf, "ping")
        assert ping.returncode == 1
        assert ping.stdout.strip() == "Node VerneMQ@127.0.0.1 not responding to pings"
    finally:
        run("--config", conf, "stop")
        node.cleanup()


def test_version():
    out = run("version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_chkconfig_accepts_the_default_config():
    out = run("--config", str(REPO / "etc" / "vernemq.conf"), "chkconfig")
    assert out.returncode == 0, out.stderr
    assert "config is OK" in out.stdout


def test_bad_config_value_stops_the_node_with_file_line_key(tmp_path):
    conf = tmp_path / "vernemq.conf"
    conf.write_text("allow_anonymous = on\nmax_inflight_messages = lots\n")
    out = run("--config", str(conf), "console", timeout=30)
    assert out.returncode == 1
    assert f"{conf}:2: max_inflight_messages:" in out.stderr


def test_unknown_key_stops_the_node(tmp_path):
    conf = tmp_path / "vernemq.conf"
    conf.write_text("# comment\n\nmax_inflight_mesages = 3\n")
    out = run("--config", str(conf), "chkconfig")
    assert out.returncode == 1
    assert f"{conf}:3: max_inflight_mesages: unknown key" in out.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        node = Broker(tmp_path, {"listener.tcp.default": f"127.0.0.1:{busy.getsockname()[1]}"})
        node.write_conf()
        out = run("--config", str(node.conf_path), "console", timeout=30)
    node.cleanup()
    assert out.returncode == 1
    assert "failed to start" in out.stderr and "Address already in use" in out.stderr
