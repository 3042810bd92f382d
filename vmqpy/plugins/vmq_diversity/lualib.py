"""The Lua modules without a database: json, bcrypt, obf, log, kv, crypto, auth_cache, http.

Function names, arguments and answers are VerneMQ's (vmq_diversity_json.erl, ..._bcrypt.erl,
..._ets.erl, ..._cache.erl, ..._http.erl): scripts written for VerneMQ call them unchanged.
Each factory takes the Lua runtime (to build tables) and returns {function name: callable}.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import urlencode

import bcrypt as _bcrypt
import gevent
import ujson

from vmqpy.plugins.vmq_diversity.cache import AuthCache
from vmqpy.plugins.vmq_diversity.runtime import to_lua, to_py
from vmqpy.plugins.vmq_webhooks.http import POOLS, EndpointPool, WebhookFailure

log = logging.getLogger("vmqpy.plugins.vmq_diversity.lua")

def _text(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def json_module(rt: Any) -> dict[str, Any]:
    def decode(text: Any, *_: Any) -> Any:
        try:
            return to_lua(rt, ujson.loads(text))
        except (ValueError, TypeError):
            return None

    def encode(value: Any, *_: Any) -> Any:
        data = to_py(value)
        try:
            return ujson.dumps(data, ensure_ascii=False, reject_bytes=False, sort_keys=True,
                               escape_forward_slashes=False)
        except (ValueError, TypeError, OverflowError):
            return None

    return {"decode": decode, "encode": encode}


def bcrypt_module(rt: Any, rounds: int) -> dict[str, Any]:
    """`rounds`: the cost of the salts gen_salt makes (vmq_bcrypt.default_log_rounds)."""
    # bcrypt is CPU work of ~0.25 s at cost 12: a real thread (bcrypt releases the GIL) keeps the
    # hub serving other clients meanwhile.
    pool = gevent.get_hub().threadpool

    def gen_salt(*_: Any) -> str:
        return _bcrypt.gensalt(rounds).decode()

    def hashpw(password: Any, salt: Any) -> Any:
        try:
            return pool.apply(_bcrypt.hashpw, (_text(password), _text(salt))).decode()
        except ValueError:  # not a bcrypt hash (an empty or foreign password column)
            return False

    return {"gen_salt": gen_salt, "hashpw": hashpw}


def obf_module(rt: Any) -> dict[str, Any]:
    # vmqpy keeps CONNECT passwords as they came: decrypting or encrypting is the identity.
    return {"decrypt": lambda value, *_: value, "encrypt": lambda value, *_: value}


def log_module(rt: Any) -> dict[str, Any]:
    return {level: (lambda msg, *_, _fn=getattr(log, fn): _fn("%s", msg))
            for level, fn in (("info", "info"), ("error", "error"), ("debug", "debug"),
                              ("warning", "warning"))}


def crypto_module(rt: Any) -> dict[str, Any]:
    def hash_(algorithm: Any, data: Any) -> bytes:
        name = str(algorithm)
        return hashlib.new("sha1" if name == "sha" else name, _text(data)).digest()  # Erlang's names

    return {"hash": hash_}


class KV:
    """The `kv` module's tables (VerneMQ's ets tables), shared by every state and script."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, Any]] = {}

    def module(self, rt: Any) -> dict[str, Any]:
        tables = self.tables

        def table(name: Any) -> dict[Any, Any]:
            if name not in tables:
                raise KeyError(f"unknown kv table {name!r}")
            return tables[name]

        def ensure_table(config: Any) -> bool:
            tables.setdefault(to_py(config).get("name", "simple_kv"), {})
            return True

        def insert(name: Any, objects: Any) -> bool:
            table(name).update(to_py(objects))
            return True

        def insert_new(name: Any, objects: Any) -> bool:
            t, new = table(name), to_py(objects)
            if any(k in t for k in new):
                return False
            t.update(new)
            return True

        def lookup(name: Any, key: Any) -> Any:
            t = table(name)
            return to_lua(rt, [t[key]] if key in t else [])

        def delete(name: Any, key: Any) -> bool:
            table(name).pop(key, None)
            return True

        def delete_all(name: Any) -> bool:
            table(name).clear()
            return True

        return {"ensure_table": ensure_table, "insert": insert, "insert_new": insert_new,
                "lookup": lookup, "delete": delete, "delete_all": delete_all}


def auth_cache_module(cache: AuthCache, rt: Any) -> dict[str, Any]:
    def insert(mountpoint: str, client_id: str, username: str, publish_acl: Any, subscribe_acl: Any) -> bool:
        cache.insert(mountpoint, client_id, username, _acl_list(publish_acl), _acl_list(subscribe_acl))
        return True

    def match_publish(mountpoint: str, client_id: str, topic: str, qos: int, payload: Any, retain: bool) -> Any:
        answer = cache.match_publish(mountpoint, client_id, int(qos), topic, _text(payload), retain)
        return to_lua(rt, answer) if isinstance(answer, dict) else bool(answer)

    def match_subscribe(mountpoint: str, client_id: str, topic: str, qos: int) -> Any:
        answer = cache.match_subscribe(mountpoint, client_id, topic, int(qos))
        return to_lua(rt, [list(answer)]) if isinstance(answer, tuple) else bool(answer)

    return {"insert": insert, "match_publish": match_publish, "match_subscribe": match_subscribe}


def _acl_list(value: Any) -> list | None:
    acls = to_py(value)
    return acls if isinstance(acls, list) else None  # an empty table decodes as {}


class Http:
    """The `http` module: requests through vmq_webhooks' pooled keep-alive client (http.POOLS):
    a URL that is also a webhook endpoint uses the webhook's connections."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._sizes: dict[str, int] = {}
        self._pools: dict[tuple[str, str], EndpointPool] = {}

    def close(self) -> None:
        for _, url in self._pools:
            POOLS.release(url)
        self._pools.clear()

    def module(self, rt: Any) -> dict[str, Any]:
        def ensure_pool(config: Any) -> bool:
            options = to_py(config)
            self._sizes.setdefault(options.get("pool_id", "pool_http"), int(options.get("size", 10)))
            return True

        def request(method: str, pool_id: Any, url: Any, body: Any = b"", headers: Any = None) -> Any:
            if pool_id not in self._sizes:
                raise KeyError(f"unknown pool {pool_id!r}")
            pool = self._pools.get((pool_id, url))
            if pool is None:
                pool = self._pools[(pool_id, url)] = POOLS.acquire(url, self._sizes[pool_id], 60.0)
            payload = to_py(body)
            hdrs = to_py(headers) if headers is not None else {}
            hdrs = hdrs if isinstance(hdrs, dict) else {}
            if isinstance(payload, dict):  # a table body is a form, as VerneMQ's hackney sends it
                payload = urlencode(payload)
                hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
            try:
                resp = pool.request(method, b"" if payload is None else _text(payload), hdrs, self._timeout)
            except WebhookFailure as e:
                log.error("http request failure for %s %s due to %s", method, url, e.reason)
                return False
            return to_lua(rt, {"status": resp.status, "headers": dict(resp.headers.items()), "ref": resp.body})

        return {"ensure_pool": ensure_pool, "body": lambda ref, *_: ref,
                **{name: (lambda *a, _m=method: request(_m, *a))
                   for name, method in (("get", "GET"), ("put", "PUT"), ("post", "POST"),
                                        ("delete", "DELETE"))}}
