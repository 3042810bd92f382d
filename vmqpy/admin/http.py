"""The HTTP listeners (listener.http.<name>): a WSGI app served by gevent's WSGI server.

Routes, each belonging to one of VerneMQ's HTTP modules (a listener serves
the modules its `http_modules` option names, else those of `http_modules`):

    /health        vmq_health_http    200 {"status":"OK"}, or 503 {"status":"DOWN","reasons":[...]}
                                      (listeners and workers not ready); also, as VerneMQ's:
    /health/ping                      200 {"status":"OK"} while the node answers HTTP (liveness)
    /health/listeners                 listeners only: 503 {"status":"DOWN","reason":"..."}
    /health/listeners_full_cluster    /health, and 503 while another cluster node is unreachable
    /metrics       vmq_metrics_http   Prometheus text format, VerneMQ's metric names, node label
    /status        vmq_status_http    the cluster's status page, polling /status.json (admin/cluster_status.py)
    /api/v1/...    vmq_http_mgmt_api  vmq-admin commands as JSON
    /restmqtt/api/v1/publish  vmq_http_pub  publish over HTTP (admin/http_pub.py)

Each module's auth mode (http_module.M.auth.mode, per listener
listener.http.NAME.http_module.M.auth.mode) is noauth or apikey: an API key of
the module's scope, as basic auth username or x-api-key header. vmq_http_mgmt_api
and vmq_http_pub default to apikey, the others to noauth (VerneMQ's defaults).
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

import ujson
from gevent import pywsgi
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from vmqpy import http_limits
from vmqpy.admin import http_pub
from vmqpy.admin.apikeys import api_keys
from vmqpy.admin.cluster_status import cluster_status
from vmqpy.admin.commands import Result, Table
from vmqpy.admin.table import text_document
from vmqpy.broker import tls
from vmqpy.broker.listeners import Listener, ListenerError
from vmqpy.config_schema import HTTP_KINDS
from vmqpy.metrics import HasSamples, prometheus_text

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)

STATUS_PAGE = Path(__file__).with_name("status") / "index.html"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# /api/v1 shortcuts VerneMQ accepts
ALIASES = {("cluster",): ["cluster", "show"], ("sessions",): ["session", "show"],
           ("listeners",): ["listener", "show"], ("plugins",): ["plugin", "show"]}

Response = tuple[int, list[tuple[str, str]], bytes]


class OpsView(Protocol):
    """The node as its operators see it (services.LocalView, or cluster.ops.WorkersView summing
    the workers): what /health, /metrics, /status.json, /api/v1, $SYS and Graphite show."""

    def metrics(self, labelled: bool = False) -> HasSamples: ...
    def status(self) -> dict[str, Any]: ...
    def health(self) -> list[str]: ...
    def execute(self, argv: list[str]) -> Result: ...


def health_concerns(node: Node) -> list[str]:
    """Why the node does not accept MQTT connections (empty: healthy)."""
    listeners = list(node.listeners.all.values())
    if not listeners:
        return ["No MQTT listener configured"]
    down = [f"{listener.kind}.{listener.name}" for listener in listeners if not listener.running]
    return [f"Listeners are not ready: {', '.join(down)}"] if down else []


def _health(concerns: list[str]) -> Response:
    if concerns:
        return _json(503, {"status": "DOWN", "reasons": concerns})
    return _json(200, {"status": "OK"})


def _json(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return status, [("Content-Type", "application/json"), *headers], ujson.dumps(value).encode()


def _command_json(output: str | Table) -> Any:
    """clique's JSON writer: a table as rows, text as text, nothing as []."""
    if isinstance(output, Table):
        return output.document()
    return text_document(output) if output else []


# the API key scope each module's `apikey` auth mode asks for (VerneMQ's vmq_auth_apikey scopes)
SCOPES = {"vmq_http_mgmt_api": "mgmt", "vmq_status_http": "status", "vmq_metrics_http": "metrics",
          "vmq_health_http": "health", "vmq_http_pub": "httppub", "vmq_http_v2_api": "api2"}


def auth_mode(node: Node, listener: str, module: str) -> str:
    """listener.KIND.NAME.http_module.MODULE.auth.mode (`listener`: "http.NAME" or "https.NAME"),
    else http_module.MODULE.auth.mode."""
    local = node.config.get(f"listener.{listener}.http_module.{module}.auth.mode")
    return local or node.config[f"http_module.{module}.auth.mode"]


class App:
    """The WSGI application of one HTTP listener."""

    def __init__(self, node: Node, modules: Iterable[str], view: OpsView, listener: str = "http.default") -> None:
        self.node = node
        self.view = view
        self.listener = listener
        self.keys = api_keys(node)
        routes: dict[str, dict[str, Callable[[dict], Response]]] = {
            "vmq_health_http": {"/health": self.health, "/health/ping": self.health_ping,
                                "/health/listeners": self.health_listeners,
                                "/health/listeners_full_cluster": self.health_full_cluster},
            "vmq_metrics_http": {"/metrics": self.metrics},
            "vmq_status_http": {"/status": self.status_page, "/status/": self.status_page,
                                "/status.json": self.status_json},
            "vmq_http_pub": {http_pub.PATH: self.http_publish},
        }
        modules = list(modules)
        self.routes = {path: (m, fn) for m in modules for path, fn in routes.get(m, {}).items()}
        self.api = "vmq_http_mgmt_api" in modules
        self.auth = {m: auth_mode(node, listener, m) for m in modules}

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        module, handler = self.routes.get(path, (None, None))
        if handler is None and self.api and path.startswith("/api/v1/"):
            module, handler = "vmq_http_mgmt_api", self.api_v1
        try:
            if handler is None:
                status, headers, body = _json(404, {"error": "not found"})
            elif not self._authorized(module, environ):
                status, headers, body = _json(401, {"error": "unauthorized"},
                                              [("WWW-Authenticate", 'Basic realm="VerneMQ"')])
            else:
                status, headers, body = handler(environ)
        except Exception:
            log.exception("HTTP %s failed", path)
            status, headers, body = _json(500, {"error": "internal error"})
        start_response(f"{status} {_REASONS.get(status, '')}", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _authorized(self, module: str, environ: dict) -> bool:
        """The module's auth mode: noauth, or apikey (a valid key of the module's scope)."""
        return self.auth.get(module) != "apikey" or self.keys.valid(_api_key(environ), SCOPES[module])

    def health(self, environ: dict) -> Response:
        return _health(self.view.health())

    def health_ping(self, environ: dict) -> Response:
        return _json(200, {"status": "OK"})

    def health_listeners(self, environ: dict) -> Response:
        concerns = self.view.health()
        return _json(503, {"status": "DOWN", "reason": "; ".join(concerns)}) if concerns else _health([])

    def health_full_cluster(self, environ: dict) -> Response:
        cluster = self.node.cluster
        offline = ["At least one node is offline"] if cluster is not None and cluster.split else []
        return _health(offline + self.view.health())

    def metrics(self, environ: dict) -> Response:
        text = prometheus_text(self.view.metrics(labelled=True), {"node": self.node.name},
                               self.node.config["prometheus_namespace"])
        return 200, [("Content-Type", PROMETHEUS_TYPE)], text.encode()

    def status_page(self, environ: dict) -> Response:
        return 200, [("Content-Type", "text/html; charset=utf-8")], STATUS_PAGE.read_bytes()

    def status_json(self, environ: dict) -> Response:
        return _json(200, cluster_status(self.node, self.view))

    def http_publish(self, environ: dict) -> Response:
        if environ.get("REQUEST_METHOD") not in ("POST", "PUT"):
            return 405, [("Allow", "POST, PUT")], b""
        status, text = http_pub.handle(self.node, self.listener, environ)
        return status, [("Content-Type", "text/plain")], text.encode()

    def api_v1(self, environ: dict) -> Response:
        words = [w for w in environ["PATH_INFO"][len("/api/v1/"):].split("/") if w]
        argv = ALIASES.get(tuple(words), words)
        for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            argv.append(f"{key}={value}" if value else key)
        ok, output = self.view.execute(argv)
        if not ok:
            return _json(400, {"type": "alert", "text": str(output)})
        return _json(200, _command_json(output))


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _api_key(environ: dict) -> str:
    """The key of basic auth (as username, password empty) or of an x-api-key header."""
    header = environ.get("HTTP_X_API_KEY")
    if header:
        return header
    scheme, _, cred = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(cred).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return ""


class _TooLong(ValueError):
    def __init__(self, status: int) -> None:
        super().__init__(f"request over the listener's limits ({status})")
        self.status = status


class LimitedHandler(WSGIHandler):
    """gevent's handler with the listener's limits (`server.limits`: its options)."""

    def read_requestline(self) -> str:
        return self.rfile.readline(self.server.limits.get("max_request_line_length", 8000) + 3).decode("latin-1")

    def read_request(self, raw_requestline: str) -> bool:
        status = http_limits.too_long(raw_requestline.rstrip("\r\n"), [], self.server.limits)
        if status:
            raise _TooLong(status)
        ok = super().read_request(raw_requestline)
        status = http_limits.too_long("", list(self.headers.items()), self.server.limits)
        if status:
            raise _TooLong(status)
        return ok

    def _handle_client_error(self, ex: BaseException):
        if isinstance(ex, _TooLong):
            reason = http_limits.REASONS[ex.status]
            return (str(ex.status), b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                    % (ex.status, reason.encode()))
        return super()._handle_client_error(ex)


def allow_request_lines(length: int) -> None:
    """gevent refuses request lines of MAX_REQUEST_LINE (a module setting) before any handler can; raise
    it to the longest a listener allows, LimitedHandler applies each listener's own."""
    pywsgi.MAX_REQUEST_LINE = max(pywsgi.MAX_REQUEST_LINE, length + 3)


class HttpListener(Listener):
    """One listener.http.<name> and its WSGI server."""

    def describe(self) -> dict:
        pool = self.server.pool if self.server is not None else None
        self.connections = len(pool) if pool is not None else 0
        return {**super().describe(), "mountpoint": ""}


class HttpListeners:
    def __init__(self, node: Node, view: OpsView) -> None:
        self.node = node
        self.view = view
        self.all: dict[str, HttpListener] = {
            f"{spec.kind}.{spec.name}": HttpListener(spec) for spec in node.config.listeners
            if spec.kind in HTTP_KINDS}

    def start_all(self) -> None:
        for listener in self.all.values():
            self.start(listener)

    def start(self, listener: HttpListener) -> None:
        if listener.running:
            return
        spec = listener.spec
        limit = listener.opts.get("max_connections", math.inf)
        spawn = Pool(int(limit)) if limit != math.inf else "default"
        modules = listener.opts.get("http_modules") or self.node.config["http_modules"]
        app = App(self.node, modules, self.view, f"{listener.kind}.{listener.name}")
        where = f"listener {listener.kind}.{listener.name}"
        tls_args = {}
        if listener.kind == "https":  # TLS as the ssl listeners have it (certfile, keyfile, cafile, ...)
            try:
                tls_args = {"ssl_context": tls.server_context(listener.opts)}
            except (OSError, ValueError) as e:
                raise ListenerError(f"{where}: TLS: {e}") from e
        server = WSGIServer((spec.host, spec.port), app, spawn=spawn, log=None, error_log=log,
                            handler_class=LimitedHandler, **tls_args)
        server.limits = listener.opts
        allow_request_lines(listener.opts.get("max_request_line_length", 8000))
        try:
            server.start()
        except OSError as e:
            raise ListenerError(f"{where} on {spec.host}:{spec.port}: {e.strerror or e}") from e
        listener.server = server
        log.info("%s on %s:%s started", where, *listener.address)

    def stop(self, listener: HttpListener, timeout: float | None = None) -> None:
        """Stop accepting; with a timeout also end open requests after that many seconds."""
        server = listener.server
        if server is not None:
            server.close() if timeout is None else server.stop(timeout=timeout)
            listener.server = None
            log.info("listener %s.%s stopped", listener.kind, listener.name)

    def stop_all(self) -> None:
        for listener in self.all.values():
            self.stop(listener, timeout=1.0)
