"""For listener tests: the test certificates as a fixture (pki.make_pki's, client CN `device-7`), a TLS
listener's config, PROXY v2 headers."""

from __future__ import annotations

import socket
import struct

import pytest
from broker import free_port
from pki import Pki, make_pki

CLIENT_CN = "device-7"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), CLIENT_CN)


def tls_conf(pki: Pki, key: str, **extra: str) -> dict[str, str]:
    """The config of a TLS listener `key` (e.g. listener.ssl.default) on a free port."""
    conf = {key: f"127.0.0.1:{free_port()}", f"{key}.certfile": pki.server_cert,
            f"{key}.keyfile": pki.server_key, f"{key}.cafile": pki.ca}
    conf.update({f"{key}.{k}": v for k, v in extra.items()})
    return conf


def proxy_v2(src: str, sport: int, command: int = 1, tlvs: bytes = b"") -> bytes:
    """A v2 header for a TCP client src:sport (to 127.0.0.1 or ::1 port 1883)."""
    six = ":" in src
    family = 0x21 if six else 0x11
    pack = socket.AF_INET6 if six else socket.AF_INET
    dst = "::1" if six else "127.0.0.1"
    body = socket.inet_pton(pack, src) + socket.inet_pton(pack, dst) + struct.pack("!HH", sport, 1883) + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes((0x20 | command, family)) + struct.pack("!H", len(body)) + body
