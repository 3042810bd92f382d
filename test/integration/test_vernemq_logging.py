"""VerneMQ 2.x's log keys on a real node: levels (notice), JSON lines, size rotation with compression."""

from __future__ import annotations

import gzip
import json

from broker import wait_until
from clients import Raw


def refuse_clients(node, cid: str, n: int) -> None:
    """Each refused CONNECT logs one info line ("refused client ...")."""
    for i in range(n):
        raw = Raw(node.port)
        assert raw.connect(f"{cid}-{i}", username="nobody", password=b"x").reason_code == 5
        raw.close()


def test_json_lines_and_notice_level(make_broker, cid):
    node = make_broker({"allow_anonymous": "off", "log.console": "file", "log.console.level": "notice",
                        "log.console.file.format": "json", "listener.tcp.default.max_connections": "1"})
    refuse_clients(node, cid, 2)  # info: below notice, not written
    first = Raw(node.port)
    second = Raw(node.port)
    assert second.closed_by_broker()  # max_connections: a warning
    first.close()
    node.stop()
    lines = node.log_path.read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert docs and all({"time", "level", "msg", "pid", "logger"} <= set(d) for d in docs)
    assert not [d for d in docs if d["level"] in ("debug", "info")]
    assert not [d for d in docs if "refused client" in d["msg"]]
    assert [d for d in docs if d["level"] == "warning" and "max_connections" in d["msg"]]


def test_size_rotation_keeps_and_compresses(make_broker, cid):
    node = make_broker({"allow_anonymous": "off", "log.console": "file", "log.console.rotation.size": "1KB",
                        "log.console.rotation.keep": "2", "log.console.rotation.compress_on_rotate": "on"})
    log_dir = node.log_path.parent
    refuse_clients(node, cid, 40)  # ~100 bytes a line: several rotations
    wait_until(lambda: (log_dir / "console.log.2.gz").exists(), what="two rotated, compressed logs")
    assert not (log_dir / "console.log.3.gz").exists()  # keep = 2
    assert "refused client" in gzip.decompress((log_dir / "console.log.1.gz").read_bytes()).decode()
    assert node.log_path.stat().st_size <= 1024 + 512


def test_syslog_over_tls_to_a_remote_server(make_broker, pki, cid):
    """log.syslog.remote.protocol = tls: RFC 5425 lines to a TLS syslog server, checked against the cafile."""
    import socket
    import ssl
    import threading

    from broker import free_port

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while data := tls.recv(65536):
                received.append(data)

    threading.Thread(target=serve, daemon=True).start()
    node = make_broker({"allow_anonymous": "off", "log.syslog": "on", "log.syslog.remote.host": "127.0.0.1",
                        "log.syslog.remote.port": str(port), "log.syslog.remote.protocol": "tls",
                        "log.syslog.remote.tls.cafile": pki.ca, "log.syslog.format": "rfc5424",
                        "log.syslog.app_name": "vmq-test", "log.syslog.facility": "local3"})
    refuse_clients(node, cid, 1)
    wait_until(lambda: b"refused client" in b"".join(received), what="the syslog line over TLS")
    line = next(x for x in b"".join(received).split(b"\n") if b"refused client" in x)
    assert line.startswith(b"<158>1 ")  # PRI: local3 (19) * 8 + info (6); RFC 5424 version 1
    assert b" vmq-test " in line
    listener.close()
