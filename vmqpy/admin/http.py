"""The HTTP listeners (listener.http.<name>): a WSGI app served by gevent's WSGI server.

Routes, each belonging to one of VerneMQ's HTTP modules (a listener serves
the modules its `http_modules` option names, else those of `http_modules`):

    /health        vmq_health_http    200 {"status":"OK"}, or 503 {"status":"DOWN","reasons":[...]}
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
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from vmqpy.admin import http_pub
from vmqpy.admin.apikeys import api_keys
from vmqpy.admin.cluster_status import cluster_status
from vmqpy.admin.commands import Result, Table
from vmqpy.broker.listeners import Listener, ListenerError
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

    def metrics(self) -> HasSamples: ...
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


def _json(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return status, [("Content-Type", "application/json"), *headers], ujson.dumps(value).encode()


def _command_json(output: str | Table) -> Any:
    """clique's JSON writer: a table as rows, text as text, nothing as []."""
    if isinstance(output, Table):
        return {"type": "table", "table": [{c: r.get(c) for c in output.columns} for r in output.rows]}
    return {"type": "text", "text": output} if output else []


# the API key scope each module's `apikey` auth mode asks for (VerneMQ's vmq_auth_apikey scopes)
SCOPES = {"vmq_http_mgmt_api": "mgmt", "vmq_status_http": "status", "vmq_metrics_http": "metrics",
          "vmq_health_http": "health", "vmq_http_pub": "httppub", "vmq_http_v2_api": "api2"}


def auth_mode(node: Node, listener: str, module: str) -> str:
    """listener.http.NAME.http_module.MODULE.auth.mode, else http_module.MODULE.auth.mode."""
    local = node.config.get(f"listener.http.{listener}.http_module.{module}.auth.mode")
    return local or node.config[f"http_module.{module}.auth.mode"]


class App:
    """The WSGI application of one HTTP listener."""

    def __init__(self, node: Node, modules: Iterable[str], view: OpsView, listener: str = "default") -> None:
        self.node = node
        self.view = view
        self.listener = listener
        self.keys = api_keys(node)
        routes: dict[str, dict[str, Callable[[dict], Response]]] = {
            "vmq_health_http": {"/health": self.health},
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
        concerns = self.view.health()
        if concerns:
            return _json(503, {"status": "DOWN", "reasons": concerns})
        return _json(200, {"status": "OK"})

    def metrics(self, environ: dict) -> Response:
        text = prometheus_text(self.view.metrics(), {"node": self.node.name})
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
            f"http.{spec.name}": HttpListener(spec) for spec in node.config.listeners if spec.kind == "http"}

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
        app = App(self.node, modules, self.view, listener.name)
        server = WSGIServer((spec.host, spec.port), app, spawn=spawn, log=None, error_log=log)
        try:
            server.start()
        except OSError as e:
            raise ListenerError(f"listener http.{listener.name} on {spec.host}:{spec.port}: "
                                f"{e.strerror or e}") from e
        listener.server = server
        log.info("listener http.%s on %s:%s started", listener.name, *listener.address)

    def stop(self, listener: HttpListener, timeout: float | None = None) -> None:
        """Stop accepting; with a timeout also end open requests after that many seconds."""
        server = listener.server
        if server is not None:
            server.close() if timeout is None else server.stop(timeout=timeout)
            listener.server = None
            log.info("listener http.%s stopped", listener.name)

    def stop_all(self) -> None:
        for listener in self.all.values():
            self.stop(listener, timeout=1.0)
