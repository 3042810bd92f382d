"""vmq_diversity: Lua scripts answer hooks; VerneMQ's auth scripts run unchanged. See docs/diversity.md.

Scripts load in VerneMQ's order: every *.lua of script_dir, then `vmq_diversity.NAME.file`
scripts by NAME, then the enabled `auth_<db>` scripts. A script that fails to load stops the
plugin (and so the node at start) with the file and the Lua error.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Any

from vmqpy.plugins.vmq_diversity import databases, lualib
from vmqpy.plugins.vmq_diversity.cache import AuthCache
from vmqpy.plugins.vmq_diversity.databases import Pools
from vmqpy.plugins.vmq_diversity.mongodb import mongodb_module
from vmqpy.plugins.vmq_diversity.plugin import DiversityPlugin
from vmqpy.plugins.vmq_diversity.pools import Health
from vmqpy.plugins.vmq_diversity.runtime import SHIPPED_DIR, Script, ScriptError

log = logging.getLogger(__name__)

AUTH_DBS = ("postgres", "cockroachdb", "mysql", "mysql2", "mongodb", "redis")


def script_paths(settings: dict[str, Any]) -> list[str]:
    """The scripts to load, in VerneMQ's order."""
    paths = []
    if settings.get("script_dir"):
        paths += sorted(glob.glob(os.path.join(settings["script_dir"], "*.lua")))
    paths += [settings[k] for k in sorted(k for k in settings if k.endswith(".file") and k.count(".") == 1)]
    for db in AUTH_DBS:
        if settings.get(f"auth_{db}.enabled"):
            paths.append(settings.get(f"auth_{db}.script") or os.path.join(SHIPPED_DIR, "auth", f"{db}.lua"))
    return paths


class Modules:
    """Builds the Lua modules of one state; pools, kv tables and the cache are shared by all."""

    def __init__(self, settings: dict[str, Any], cache: AuthCache, health: Health, bcrypt_rounds: int = 12) -> None:
        timeout = settings.get("query_timeout", 5000) / 1000
        self.bcrypt_rounds = bcrypt_rounds  # vmq_bcrypt.default_log_rounds
        self.pools = Pools(settings, health, timeout)
        self.kv = lualib.KV()
        self.http = lualib.Http(timeout)
        self.cache = cache

    def __call__(self, rt: Any) -> dict[str, dict[str, Any]]:
        p = self.pools
        return {
            "postgres": databases.postgres_module(p, "postgres", rt),
            "cockroachdb": databases.postgres_module(p, "cockroachdb", rt),
            "mysql": databases.mysql_module(p, "mysql", rt),
            "mysql2": databases.mysql_module(p, "mysql2", rt),
            "redis": databases.redis_module(p, rt),
            "memcached": databases.memcached_module(p, rt),
            "mongodb": mongodb_module(p, rt),
            "http": self.http.module(rt),
            "json": lualib.json_module(rt),
            "bcrypt": lualib.bcrypt_module(rt, self.bcrypt_rounds),
            "obf": lualib.obf_module(rt),
            "log": lualib.log_module(rt),
            "crypto": lualib.crypto_module(rt),
            "kv": self.kv.module(rt),
            "auth_cache": lualib.auth_cache_module(self.cache, rt),
        }


def start(settings: dict[str, Any], ctx: Any) -> DiversityPlugin:
    cache = AuthCache()
    config = getattr(ctx, "config", None)
    rounds = config["vmq_bcrypt.default_log_rounds"] if config is not None else 12
    modules = Modules(settings, cache, Health(getattr(ctx, "metrics", None)), rounds)
    search = [d for d in (settings.get("script_dir"), SHIPPED_DIR) if d]

    def load(path: str) -> Script:
        script = Script(path, settings.get("nr_lua_states", 1), settings.get("keep_state", False), search, modules)
        log.info("vmq_diversity: loaded %s (%d Lua states), hooks: %s", path, script.states,
                 ", ".join(script.hooks) or "none")
        return script

    try:
        scripts = [load(path) for path in script_paths(settings)]
    except ScriptError:
        modules.pools.close()
        raise
    return DiversityPlugin(scripts, cache, [modules.pools, modules.http], load)
