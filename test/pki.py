"""Test certificates made with `openssl` in a temp dir: a CA, a server certificate for 127.0.0.1
and a client certificate with CN `device-7`; `revoke` writes a CRL (the CA's openssl `ca` database)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_CN = "device-7"
_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_CA_CONF = """[ca]
default_ca = test
[test]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 2
"""


@dataclass
class Pki:
    dir: Path
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def revoke(self, cert: str) -> str:
        """Revoke `cert` and write the CA's CRL (crl.pem, all revocations so far); its path."""
        _openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke", cert, cwd=self.dir)
        return self.crl()

    def crl(self) -> str:
        _openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl", "-out", "crl.pem",
                 cwd=self.dir)
        return str(self.dir / "crl.pem")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(d: Path, name: str, cn: str, ext: str, days: int = 2) -> None:
    _openssl("req", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=d)


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", *_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=vmqpy test CA", cwd=d)
    (d / "ca.cnf").write_text(_CA_CONF)
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    issue(d, "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    issue(d, "client", CLIENT_CN, "extendedKeyUsage=clientAuth\n")
    return Pki(d, *(str(d / f) for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
