"""TLS for the ssl and wss listeners: one server context per listener, the client's identity.

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
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[opts.get("tls_version") or "tlsv1.2"]
    ctx.load_cert_chain(opts["certfile"], opts.get("keyfile") or None)
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


def common_name(sock: Any) -> str | None:
    """The CN of the verified client certificate on `sock` (a TLS socket or a stream over one)."""
    getpeercert = getattr(sock, "getpeercert", None)
    cert = getpeercert() if getpeercert is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
