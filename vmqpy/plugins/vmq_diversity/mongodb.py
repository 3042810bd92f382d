"""The `mongodb` Lua module on pymongo (VerneMQ's vmq_diversity_mongo.erl).

Not tested against a MongoDB server (none can be installed here): the client options,
the ObjectId mapping and the answers are tested without one. pymongo keeps its own
connection pool (maxPoolSize = pool_size); the vmq_diversity Pool around the one client
bounds concurrent calls, applies the query timeout and tracks outages like the others.
"""

from __future__ import annotations

import itertools
from typing import Any

from vmqpy.plugins.vmq_diversity.databases import Pools
from vmqpy.plugins.vmq_diversity.pools import Pool
from vmqpy.plugins.vmq_diversity.runtime import to_lua, to_py

OBJECT_ID_PREFIX = "vmq-objid"  # VerneMQ hands ObjectIds to Lua as "vmq-objid<hex>"


def client_options(opts: dict[str, Any], timeout: float) -> dict[str, Any]:
    """pymongo.MongoClient keyword arguments from the vmq_diversity.mongodb.* options."""
    ms = int(timeout * 1000)
    out: dict[str, Any] = {
        "host": f"mongodb+srv://{opts['srv']}" if opts.get("srv") else opts["host"],
        "maxPoolSize": int(opts["pool_size"]), "readPreference": opts.get("read_preference", "primaryPreferred"),
        "w": 1 if opts.get("w_mode", "safe") == "safe" else 0, "serverSelectionTimeoutMS": ms,
        "connectTimeoutMS": ms, "socketTimeoutMS": ms, "connect": False,
    }
    if not opts.get("srv"):
        out["port"] = int(opts["port"])
    if opts.get("login"):
        out.update(username=opts["login"], password=opts.get("password") or "",
                   authSource=opts.get("auth_source") or "admin")
    if opts.get("ssl"):
        out["tls"] = True
        out["tlsAllowInvalidCertificates"] = opts.get("ssl.verify") == "verify_none"
        if opts.get("cafile"):
            out["tlsCAFile"] = opts["cafile"]
        if opts.get("certfile"):
            out["tlsCertificateKeyFile"] = opts["certfile"]
    return out


def to_doc(value: Any) -> Any:
    """A Lua value for MongoDB: "vmq-objid<hex>" strings become ObjectIds again."""
    from bson import ObjectId

    if isinstance(value, dict):
        return {k: to_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_doc(v) for v in value]
    if isinstance(value, str) and value.startswith(OBJECT_ID_PREFIX):
        return ObjectId(value[len(OBJECT_ID_PREFIX):])
    return value


def from_doc(value: Any) -> Any:
    """A MongoDB value for Lua: ObjectIds as "vmq-objid<hex>", other BSON types as text."""
    from bson import ObjectId

    if isinstance(value, dict):
        return {k: from_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_doc(v) for v in value]
    if isinstance(value, ObjectId):
        return OBJECT_ID_PREFIX + str(value)
    return value if value is None or isinstance(value, str | int | float | bool | bytes) else str(value)


def mongodb_module(pools: Pools, rt: Any) -> dict[str, Any]:
    cursors: dict[str, Any] = {}
    ids = itertools.count(1)

    def ensure_pool(config: Any) -> bool:
        import pymongo

        pool_id, opts = pools.options("mongodb", config)

        def make() -> Pool:
            client = pymongo.MongoClient(**client_options(opts, pools.timeout))
            database = client[opts.get("database") or "test"]
            return Pool(pool_id, lambda: database, int(opts["pool_size"]), pools.timeout, pools.health,
                        close=lambda db: None)
        pools.ensure(pool_id, make)
        return True

    def run(pool_id: Any, fn: Any) -> Any:
        return pools.get(pool_id).run(fn)

    def insert(pool_id: Any, collection: Any, docs: Any) -> Any:
        value = to_doc(to_py(docs))
        if isinstance(value, list):
            run(pool_id, lambda db: db[collection].insert_many(value))
        else:
            run(pool_id, lambda db: db[collection].insert_one(value))
        return to_lua(rt, from_doc(value))

    def update(pool_id: Any, collection: Any, selector: Any, doc: Any) -> bool:
        result = run(pool_id, lambda db: db[collection].update_many(to_doc(to_py(selector)),
                                                                   {"$set": to_doc(to_py(doc))}))
        return result.matched_count > 0

    def delete(pool_id: Any, collection: Any, selector: Any) -> bool:
        result = run(pool_id, lambda db: db[collection].delete_many(to_doc(to_py(selector))))
        return result.deleted_count > 0

    def find_one(pool_id: Any, collection: Any, selector: Any, *_: Any) -> Any:
        doc = run(pool_id, lambda db: db[collection].find_one(to_doc(to_py(selector))))
        return False if doc is None else to_lua(rt, from_doc(doc))

    def find(pool_id: Any, collection: Any, selector: Any, *_: Any) -> str:
        cursor = run(pool_id, lambda db: db[collection].find(to_doc(to_py(selector))))
        name = f"mongo-cursor-{next(ids)}"
        cursors[name] = cursor
        return name

    def cursor_next(name: Any) -> Any:
        doc = next(cursors[name], None)
        return False if doc is None else to_lua(rt, from_doc(doc))

    def cursor_take(name: Any, n: Any) -> Any:
        docs = list(itertools.islice(cursors[name], int(n)))
        return to_lua(rt, [from_doc(d) for d in docs]) if docs else False

    def cursor_close(name: Any) -> bool:
        cursor = cursors.pop(name, None)
        if cursor is not None:
            cursor.close()
        return True

    return {"ensure_pool": ensure_pool, "insert": insert, "update": update, "delete": delete,
            "find": find, "find_one": find_one, "next": cursor_next, "take": cursor_take,
            "close": cursor_close}
