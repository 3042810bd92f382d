"""Test certificates (a CA, a server certificate for 127.0.0.1, a client certificate with CN
`device-7`, made with `openssl` in the test's temp dir) and PROXY v2 headers, for listener tests."""

from __future__ import annotations

import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from broker import free_port

CLIENT_CN = "device-7"


@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    bundle: str = ""  # the CA and an intermediate CA it signed
    deep_cert: str = ""  # a client certificate (CN device-7) the intermediate CA signed
    deep_key: str = ""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(d: Path, name: str, cn: str, ext: str, ca: str = "ca") -> None:
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=vmqpy test CA", cwd=d)
    _issue(d, "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _issue(d, "client", CLIENT_CN, "extendedKeyUsage=clientAuth\n")
    _issue(d, "inter", "vmqpy test intermediate CA", "basicConstraints=critical,CA:true\nkeyUsage=keyCertSign\n")
    _issue(d, "deep", CLIENT_CN, "extendedKeyUsage=clientAuth\n", ca="inter")
    (d / "bundle.pem").write_text((d / "ca.pem").read_text() + (d / "inter.pem").read_text())
    return Pki(*(str(d / f) for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key",
                                     "bundle.pem", "deep.pem", "deep.key")))


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
