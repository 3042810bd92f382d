"""Keep-alive HTTP/1.1 connection pools, one per webhook endpoint.

Mirrors VerneMQ's hackney pools: at most `max_connections` requests in flight
per endpoint (further callers wait), idle connections kept for `idle_timeout`
seconds. Sockets are gevent's, so a request only parks the calling greenlet.
"""

from __future__ import annotations

import http.client
import ssl
import time
from typing import NamedTuple
from urllib.parse import urlsplit

import gevent
import gevent.socket
import gevent.ssl
from gevent.lock import BoundedSemaphore

# A keep-alive connection the server closed while idle fails on first use with
# one of these; the request is then retried once on a fresh connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

_TLS_VERSIONS = {
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


class WebhookFailure(Exception):
    """The endpoint could not be asked or gave no usable answer; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def tls_context(settings: dict) -> ssl.SSLContext:
    """The client TLS context for https endpoints, from the vmq_webhooks.* TLS keys."""
    ctx = gevent.ssl.create_default_context(cafile=settings.get("cafile") or None)
    if not settings.get("verify_peer", True):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    version = _TLS_VERSIONS.get(str(settings.get("tls_version", "tlsv1.2")).lower())
    if version is None:
        raise ValueError(f"vmq_webhooks.tls_version: unsupported {settings.get('tls_version')!r}")
    ctx.minimum_version = ctx.maximum_version = version  # VerneMQ pins exactly one version
    if settings.get("certfile"):
        ctx.load_cert_chain(settings["certfile"], settings.get("keyfile") or None,
                            settings.get("keyfile_password") or None)
    if settings.get("use_crls", True) and _has_crl(settings.get("cafile")):
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # the CRLs come with the CAs in the cafile
    return ctx


def _has_crl(cafile: str | None) -> bool:
    """Whether the cafile holds CRLs (OpenSSL then checks them; with none it would refuse every peer)."""
    if not cafile:
        return False
    with open(cafile, "rb") as f:
        return b"-----BEGIN X509 CRL-----" in f.read()


class EndpointPool:
    """The connections to one endpoint URL."""

    def __init__(self, url: str, max_connections: int, idle_timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid endpoint {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._tls = tls
        self._idle_timeout = idle_timeout
        self._slots = BoundedSemaphore(max_connections)
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """POST `body`; the whole exchange, waiting for a free slot included, takes at most `timeout` s."""
        return self.request("POST", body, headers, timeout)

    def request(self, method: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """`method` with `body` (vmq_diversity's Lua `http` module uses this client too)."""
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            with self._slots:
                conn, reused = self._checkout(timeout)
                try:
                    resp, will_close = self._exchange(conn, method, body, headers)
                except _STALE:
                    if not reused:
                        raise
                    conn = self._connect(timeout)
                    resp, will_close = self._exchange(conn, method, body, headers)
                if will_close:
                    conn.close()
                else:
                    self._idle.append((conn, time.monotonic()))
                return resp
        except gevent.Timeout as e:
            if e is not deadline:  # a caller's own deadline: not ours to swallow
                raise
            raise WebhookFailure("timeout") from None
        except (OSError, http.client.HTTPException) as e:
            raise WebhookFailure(f"request failed: {e!r}") from None
        finally:
            deadline.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()

    def _checkout(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if now - since < self._idle_timeout:
                return conn, True
            conn.close()
        return self._connect(timeout), False

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        # http.client keeps this hook as an instance attribute for exactly this kind
        # of substitution: connect with gevent's socket even without monkey-patching.
        conn._create_connection = gevent.socket.create_connection
        return conn

    def _exchange(self, conn: http.client.HTTPConnection, method: str, body: bytes,
                  headers: dict[str, str]) -> tuple[Response, bool]:
        try:
            conn.request(method, self._path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()  # a half-used connection is never pooled
            raise
        return Response(resp.status, resp.headers, data), resp.will_close


class SharedPools:
    """The node's pools by URL, one HTTP client for vmq_webhooks and vmq_diversity's Lua `http` module.

    Whoever asks first for a URL sets its pool's size and idle timeout; the pool closes when
    the last user releases it.
    """

    def __init__(self) -> None:
        self._pools: dict[str, EndpointPool] = {}
        self._users: dict[str, int] = {}

    def acquire(self, url: str, max_connections: int, idle_timeout: float,
                tls: ssl.SSLContext | None = None) -> EndpointPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = EndpointPool(url, max_connections, idle_timeout, tls)
        self._users[url] = self._users.get(url, 0) + 1
        return pool

    def release(self, url: str) -> None:
        self._users[url] -= 1
        if not self._users[url]:
            del self._users[url]
            self._pools.pop(url).close()


POOLS = SharedPools()
