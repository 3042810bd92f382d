"""TLS for the ssl, wss and https listeners: one server context per listener, the client's identity.

The context is built once when the listener starts (a missing or bad file
stops the start with a clear error); the handshake runs later in the
connection's own greenlet, so a slow client holds up nobody else.
"""

from __future__ import annotations

import socket
from typing import Any

from gevent import ssl

TLS_VERSIONS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


def server_context(opts: dict[str, Any]) -> ssl.SSLContext:
    """The SSLContext for a listener's options (certfile, keyfile, cafile, require_certificate,
    crlfile, tls_version, ciphers). Raises OSError/ssl.SSLError/ValueError on bad settings."""
    if not opts.get("certfile"):
        raise ValueError("certfile is not set")
    if opts.get("psk_support"):
        raise ValueError("psk_support = on: TLS-PSK is not available (Python 3.11's ssl module has no PSK)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[opts.get("tls_version") or "tlsv1.2"]
    ctx.load_cert_chain(opts["certfile"], opts.get("keyfile") or None, opts.get("keypasswd") or None)
    curves = [c.strip() for c in opts.get("eccs", "").strip("[]").split(",") if c.strip()]
    if len(curves) > 1:
        raise ValueError(f"eccs: vmqpy can restrict ECDHE to one curve (Python's ssl), not {len(curves)}")
    if curves:
        ctx.set_ecdh_curve(curves[0])
    if opts.get("cafile"):
        ctx.load_verify_locations(cafile=opts["cafile"])
    if opts.get("require_certificate"):
        ctx.verify_mode = ssl.CERT_REQUIRED
    if opts.get("crlfile"):
        ctx.load_verify_locations(cafile=opts["crlfile"])
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if opts.get("ciphers"):
        ctx.set_ciphers(opts["ciphers"])  # TLS 1.2 suites; OpenSSL picks the TLS 1.3 ones itself
    return ctx


def handshake(ctx: ssl.SSLContext, sock: socket.socket, timeout: float | None) -> ssl.SSLSocket:
    """Wrap an accepted socket and complete the server handshake within `timeout` seconds (None: no limit)."""
    tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    tls.settimeout(timeout)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def intermediates(ctx: ssl.SSLContext, cert: dict) -> int:
    """CA certificates between the verified client certificate `cert` and the root that signed it.

    Python's ssl has no verify depth and shows only the client's own certificate, so the chain is
    followed by issuer names through the cafile's certificates; an issuer not there came from the
    client and counts as one more (OpenSSL verified the chain it sent)."""
    by_subject = {ca["subject"]: ca for ca in ctx.get_ca_certs()}
    count, issuer = 0, cert.get("issuer")
    while issuer in by_subject:
        ca = by_subject.pop(issuer)  # pop: a loop of cross-signed certificates ends
        if ca["issuer"] == ca["subject"]:
            return count
        count, issuer = count + 1, ca["issuer"]
    return count + 1


def common_name(sock: Any) -> str | None:
    """The CN of the verified client certificate on `sock` (a TLS socket or a stream over one)."""
    getpeercert = getattr(sock, "getpeercert", None)
    cert = getpeercert() if getpeercert is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
