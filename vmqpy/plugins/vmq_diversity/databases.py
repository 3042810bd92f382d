"""The database modules of the Lua scripts: postgres, cockroachdb, mysql, mysql2, redis, memcached.

As VerneMQ's vmq_diversity_<db>.erl: `ensure_pool(config)` makes the pool `config.pool_id`
from the `vmq_diversity.<db>.*` keys, each overridable by the same name in `config`
(`size` for pool_size); `execute(pool, sql, args...)` runs a parameterised statement
(`$1` placeholders for PostgreSQL, `?` for MySQL: the values never become SQL text) and
answers the rows as a list of tables, true/false for other statements, false for a
statement the server refused. An unavailable database raises DatabaseUnavailable: the
hook fails and the client is refused.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from vmqpy.plugins.vmq_diversity.pools import Health, Pool
from vmqpy.plugins.vmq_diversity.runtime import to_lua, to_py

MYSQL_HASH_SQL = {"password": "PASSWORD(?)", "md5": "MD5(?)", "sha1": "SHA1(?)", "sha256": "SHA2(?, 256)"}


def family(settings: dict[str, Any], db: str) -> dict[str, Any]:
    """The `vmq_diversity.<db>.*` settings without the prefix."""
    prefix = f"{db}."
    return {k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix)}


class Pools:
    """Every pool the scripts ensured, by pool_id; shared by all scripts and Lua states."""

    def __init__(self, settings: dict[str, Any], health: Health, timeout: float) -> None:
        self.settings = settings
        self.health = health
        self.timeout = timeout
        self._pools: dict[str, Pool] = {}

    def ensure(self, pool_id: str, make: Callable[[], Pool]) -> None:
        if pool_id not in self._pools:
            self._pools[pool_id] = make()

    def get(self, pool_id: Any) -> Pool:
        pool = self._pools.get(pool_id)
        if pool is None:
            raise KeyError(f"unknown pool {pool_id!r}")
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def opener(self, db: str, connect: Callable[[dict[str, Any]], Any]) -> Callable[[Any], bool]:
        """A module's ensure_pool(config): the pool of `db` (the script's config over its settings),
        each connection made by connect(options)."""
        def ensure_pool(config: Any) -> bool:
            pool_id, opts = self.options(db, config)
            self.ensure(pool_id, lambda: Pool(pool_id, lambda: connect(opts), int(opts["pool_size"]),
                                              self.timeout, self.health))
            return True

        return ensure_pool

    def options(self, db: str, config: Any) -> tuple[str, dict[str, Any]]:
        """(pool_id, options): the db's settings overridden by the script's config table."""
        opts = family(self.settings, db)
        given = to_py(config) or {}
        given = given if isinstance(given, dict) else {}
        if "size" in given:
            given["pool_size"] = given.pop("size")
        opts.update(given)
        return str(given.get("pool_id", f"pool_{db}")), opts


def _value(v: Any) -> Any:
    """A column value Lua can hold: text for anything that is not a string, number or boolean."""
    return v if v is None or isinstance(v, str | int | float | bool | bytes) else str(v)


def _rows(cursor: Any, count_matters: bool) -> Any:
    """Rows as dicts; without rows true, or (`count_matters`: PostgreSQL's INSERT/UPDATE/DELETE,
    as epgsql answers them) whether any row was affected."""
    if cursor.description is None:
        return cursor.rowcount != 0 if count_matters else True
    names = [d[0] for d in cursor.description]
    return [{n: _value(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _tls_context(opts: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=opts.get("cafile") or None)
    if opts.get("ssl.use_system_cas", True):
        ctx.load_default_certs()
    if opts.get("ssl.verify", "verify_peer") == "verify_none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.get("certfile"):
        ctx.load_cert_chain(opts["certfile"], opts.get("keyfile") or None)
    return ctx


# -- PostgreSQL and CockroachDB (its wire protocol)

def postgres_module(pools: Pools, db: str, rt: Any) -> dict[str, Any]:
    import psycopg

    def connect(opts: dict[str, Any]) -> Any:
        params: dict[str, Any] = {
            "host": opts["host"], "port": opts["port"], "user": opts["user"], "password": opts["password"],
            "dbname": opts["database"], "connect_timeout": max(1, int(pools.timeout)), "autocommit": True,
            "sslmode": "disable",
        }
        if opts.get("ssl"):
            params["sslmode"] = "require" if opts.get("ssl.verify") == "verify_none" else "verify-full"
            params["sslrootcert"] = opts.get("cafile") or "system"
            if opts.get("certfile"):
                params.update(sslcert=opts["certfile"], sslkey=opts.get("keyfile") or "")
        return psycopg.connect(**params)

    ensure_pool = pools.opener(db, connect)

    def execute(pool_id: Any, sql: Any, *args: Any) -> Any:
        def run(conn: Any) -> Any:
            # RawCursor sends $1..$n placeholders and the values separately (server-side binding).
            with psycopg.RawCursor(conn) as cur:
                cur.execute(sql, [to_py(a) for a in args])
                return _rows(cur, True)
        try:
            return to_lua(rt, pools.get(pool_id).run(run))
        except psycopg.Error:  # refused by the server (bad SQL, constraint): VerneMQ answers false
            return False

    def hash_method(*_: Any) -> str:
        return family(pools.settings, db)["password_hash_method"]

    return {"ensure_pool": ensure_pool, "execute": execute, "hash_method": hash_method}


# -- MySQL / MariaDB

def mysql_placeholders(sql: str) -> str:
    """`?` placeholders as PyMySQL's `%s` (and a literal `%` doubled), leaving quoted text alone."""
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


def mysql_module(pools: Pools, db: str, rt: Any) -> dict[str, Any]:
    import pymysql

    def connect(opts: dict[str, Any]) -> Any:
        tls = _tls_context(opts) if opts.get("ssl") else None
        return pymysql.connect(host=opts["host"], port=int(opts["port"]), user=opts["user"],
                               password=opts["password"], database=opts["database"], autocommit=True,
                               connect_timeout=pools.timeout, charset="utf8mb4", ssl=tls)

    ensure_pool = pools.opener(db, connect)

    def execute(pool_id: Any, sql: Any, *args: Any) -> Any:
        def run(conn: Any) -> Any:
            with conn.cursor() as cur:
                cur.execute(mysql_placeholders(sql), [to_py(a) for a in args])
                return _rows(cur, False)
        try:
            return to_lua(rt, pools.get(pool_id).run(run))
        except (pymysql.ProgrammingError, pymysql.IntegrityError, pymysql.DataError,
                pymysql.NotSupportedError, pymysql.InternalError):
            return False

    def hash_method(*_: Any) -> str:
        return MYSQL_HASH_SQL[family(pools.settings, db)["password_hash_method"]]

    return {"ensure_pool": ensure_pool, "execute": execute, "hash_method": hash_method}


# -- Redis

def redis_module(pools: Pools, rt: Any) -> dict[str, Any]:
    import redis

    def connect(opts: dict[str, Any]) -> Any:
        client = redis.Redis(host=opts["host"], port=int(opts["port"]), db=int(opts["database"]),
                             password=opts.get("password") or None, username=opts.get("user") or None,
                             socket_timeout=pools.timeout, socket_connect_timeout=pools.timeout,
                             single_connection_client=True,
                             retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0))
        client.response_callbacks.clear()  # the server's replies as they are, like VerneMQ's eredis
        return client

    ensure_pool = pools.opener("redis", connect)

    def cmd(pool_id: Any, command: Any, *args: Any) -> Any:
        # As VerneMQ: the command text is split on spaces, table arguments are flattened.
        parts: list[Any] = str(command).split(" ")
        for arg in args:
            value = to_py(arg)
            if isinstance(value, list):
                parts += value
            elif isinstance(value, dict):
                for k, v in value.items():
                    parts += [k, v]
            else:
                parts.append(value)
        try:
            answer = pools.get(pool_id).run(lambda conn: conn.execute_command(*parts))
        except redis.ResponseError:
            return False
        return to_lua(rt, _redis_reply(answer))

    return {"ensure_pool": ensure_pool, "cmd": cmd}


def _redis_reply(answer: Any) -> Any:
    """As eredis answers: OK is true, integers come as their text, nested replies as tables."""
    if answer == b"OK":
        return True
    if isinstance(answer, int) and not isinstance(answer, bool):
        return str(answer)
    if isinstance(answer, list):
        return [_redis_reply(a) for a in answer]
    return answer


# -- memcached

def memcached_module(pools: Pools, rt: Any) -> dict[str, Any]:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheIllegalInputError

    def ensure_pool(config: Any) -> bool:
        pool_id, opts = pools.options("memcache", config)
        address = (opts["host"], int(opts["port"]))
        pools.ensure(pool_id, lambda: Pool(
            pool_id, lambda: Client(address, connect_timeout=pools.timeout, timeout=pools.timeout,
                                    default_noreply=False),
            int(opts.get("pool_size", 5)), pools.timeout, pools.health))
        return True

    def run(pool_id: Any, fn: Callable[[Any], Any]) -> Any:
        try:
            return pools.get(pool_id).run(fn)
        except MemcacheIllegalInputError:  # a key memcached cannot hold (spaces): never stored
            return None

    def get(pool_id: Any, key: Any) -> Any:
        value = run(pool_id, lambda c: c.get(key))
        return False if value is None else value

    def store(op: str) -> Callable[..., Any]:
        def call(pool_id: Any, key: Any, value: Any, expiration: Any = 0) -> Any:
            stored = run(pool_id, lambda c: getattr(c, op)(key, value, expire=int(expiration)))
            return value if stored else False  # VerneMQ answers the stored value
        return call

    return {
        "ensure_pool": ensure_pool,
        "flush_all": lambda pool_id: bool(run(pool_id, lambda c: c.flush_all())),
        "get": get,
        "set": store("set"),
        "add": store("add"),
        "replace": store("replace"),
        "delete": lambda pool_id, key: bool(run(pool_id, lambda c: c.delete(key))),
    }
