"""Test certificates made with `openssl` in a temp dir: a CA, a server certificate for 127.0.0.1 and a
client certificate with CN `device-7`; and the config of a TLS listener using them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker import free_port

CLIENT_CN = "device-7"


@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(d: Path, name: str, cn: str, ext: str) -> None:
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def make_pki(d: Path) -> Pki:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=vmqpy test CA", cwd=d)
    _issue(d, "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _issue(d, "client", CLIENT_CN, "extendedKeyUsage=clientAuth\n")
    return Pki(*(str(d / f) for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")))


def tls_conf(pki: Pki, key: str, **extra: str) -> dict[str, str]:
    """The config of a TLS listener `key` (e.g. listener.ssl.default) on a free port."""
    conf = {key: f"127.0.0.1:{free_port()}", f"{key}.certfile": pki.server_cert,
            f"{key}.keyfile": pki.server_key, f"{key}.cafile": pki.ca}
    conf.update({f"{key}.{k}": v for k, v in extra.items()})
    return conf
