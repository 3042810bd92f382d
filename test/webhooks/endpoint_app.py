"""A scriptable webhook endpoint for the tests, served by gunicorn (one gevent worker).

Every POST is recorded (path, vernemq-hook and content-type headers, client port, JSON body)
and answered by the first matching rule, else 200 {"result": "ok"}. Control:
  PUT  /_rules     JSON list of rules: {"hook", "path", "match": {field: value}} select;
                   {"status", "body" (JSON) or "raw" (text), "headers", "delay" (s)} answer
  GET  /_requests  the recorded requests, oldest first
  POST /_reset     forget rules and requests
"""

import json
import time

_rules: list[dict] = []
_requests: list[dict] = []


def _matches(rule: dict, rec: dict) -> bool:
    body = rec["body"] if isinstance(rec["body"], dict) else {}
    return (rule.get("hook", rec["hook"]) == rec["hook"]
            and rule.get("path", rec["path"]) == rec["path"]
            and all(body.get(k) == v for k, v in rule.get("match", {}).items()))


def _reply(start_response, status: int, payload: bytes, headers: dict | None = None) -> list[bytes]:
    hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    start_response(f"{status} X", hdrs + list((headers or {}).items()))
    return [payload]


def app(environ, start_response):
    global _rules
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if path == "/_rules" and method == "PUT":
        _rules = json.loads(data)
        return _reply(start_response, 200, b"{}")
    if path == "/_requests":
        return _reply(start_response, 200, json.dumps(_requests).encode())
    if path == "/_reset":
        _rules, _requests[:] = [], []
        return _reply(start_response, 200, b"{}")
    try:
        body = json.loads(data)
    except ValueError:
        body = data.decode("latin-1")
    rec = {"path": path, "hook": environ.get("HTTP_VERNEMQ_HOOK"), "peer_port": environ.get("REMOTE_PORT"),
           "content_type": environ.get("CONTENT_TYPE"), "body": body}
    _requests.append(rec)
    rule = next((r for r in _rules if _matches(r, rec)), {})
    time.sleep(rule.get("delay", 0))  # gevent worker: monkey-patched, parks only this request
    answer = rule.get("body", {"result": "ok"})
    payload = rule["raw"].encode() if "raw" in rule else json.dumps(answer).encode()
    return _reply(start_response, rule.get("status", 200), payload, rule.get("headers"))
