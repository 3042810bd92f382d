"""Revoking test certificates (pki.make_pki's): the CA's openssl `ca` database and its CRL."""

from __future__ import annotations

from pathlib import Path

from pki import Pki, _issue, _openssl

_CA_CONF = """[ca]
default_ca = test
[test]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 2
"""


def pki_dir(pki: Pki) -> Path:
    return Path(pki.ca).parent


def crl(pki: Pki) -> str:
    """The CA's CRL (crl.pem: every revocation so far), written now; its path."""
    d = pki_dir(pki)
    if not (d / "ca.cnf").exists():
        (d / "ca.cnf").write_text(_CA_CONF)
        (d / "index.txt").write_text("")
        (d / "crlnumber").write_text("01\n")
    _openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl", "-out", "crl.pem", cwd=d)
    return str(d / "crl.pem")


def revoke(pki: Pki, cert: str) -> str:
    """Revoke `cert`, then write the CRL; its path."""
    crl(pki)  # the database exists
    _openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke", cert, cwd=pki_dir(pki))
    return crl(pki)


def reissue(pki: Pki, name: str, cn: str, ext: str) -> None:
    """A new certificate (and key) in place of `name`.pem, signed by the same CA."""
    _issue(pki_dir(pki), name, cn, ext)
