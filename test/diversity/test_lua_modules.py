"""The Lua modules against VerneMQ's own module tests (apps/vmq_diversity/test/*_test.lua, copied
unchanged into test/diversity/lua/), run in this process on real servers where they need one."""

from __future__ import annotations

from pathlib import Path

import pytest
from webhooks.endpoint import control, serve

from vmqpy import config
from vmqpy.plugins.vmq_diversity import Modules
from vmqpy.plugins.vmq_diversity.cache import AuthCache
from vmqpy.plugins.vmq_diversity.pools import Health
from vmqpy.plugins.vmq_diversity.runtime import SHIPPED_DIR, Script, ScriptError

LUA = Path(__file__).parent / "lua"
TEST_USER, TEST_PASSWORD, TEST_DB = "vmq_test_user", "vmq_test_password", "vmq_test_database"


def run_script(name: str, settings: dict | None = None, source: str | None = None) -> Script:
    """Load test/diversity/lua/NAME.lua (or `source`) with the vmq_diversity.* keys `settings`."""
    settings = dict(settings or {})
    path = LUA / f"{name}.lua"
    if source is not None:
        path = Path(settings.pop("_dir")) / f"{name}.lua"
        path.write_text(source)
    conf = "".join(f"vmq_diversity.{k} = {v}\n" for k, v in settings.items())
    modules = Modules(config.parse_text(conf).plugin_settings("vmq_diversity"), AuthCache(), Health())
    try:
        return Script(str(path), 1, False, [SHIPPED_DIR], modules)
    finally:
        modules.pools.close()


@pytest.mark.parametrize("name", ["json_test", "bcrypt_test", "ets_test", "log_test", "crypto_test", "cache_test"])
def test_vernemq_module_tests_without_a_database(name):
    run_script(name)


def test_a_failing_assert_fails_the_load(tmp_path):
    with pytest.raises(ScriptError, match="assertion failed"):
        run_script("broken", {"_dir": str(tmp_path)}, "assert(json.decode('[1]')[1] == 2)")


def test_vernemq_postgres_test(postgres):
    with postgres.connect(dbname="postgres") as conn:
        conn.execute(f"CREATE USER {TEST_USER} PASSWORD '{TEST_PASSWORD}'")
        conn.execute(f"CREATE DATABASE {TEST_DB} OWNER {TEST_USER}")
    run_script("postgres_test", {"postgres.host": "127.0.0.1", "postgres.port": postgres.port,
                                 "postgres.pool_size": 5})


def test_vernemq_mysql_test(mariadb):
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {TEST_DB}")
        cur.execute(f"CREATE USER '{TEST_USER}'@'%' IDENTIFIED BY '{TEST_PASSWORD}'")
        cur.execute(f"GRANT ALL ON {TEST_DB}.* TO '{TEST_USER}'@'%'")
    # the script names host = "localhost", port = 3306: the server of this test is elsewhere
    source = (LUA / "mysql_test.lua").read_text().replace('host = "localhost"', 'host = "127.0.0.1"')
    source = source.replace("port = 3306", f"port = {mariadb.port}")
    run_script("mysql_test", {"_dir": str(mariadb.dir), "mysql.pool_size": 5}, source)


def test_vernemq_redis_test(redis_server):
    run_script("redis_test", {"redis.host": "127.0.0.1", "redis.port": redis_server.port, "redis.database": 0,
                              "redis.pool_size": 5})


def test_vernemq_memcached_test(memcached_server):
    run_script("memcached_test", {"memcache.host": "127.0.0.1", "memcache.port": memcached_server.port})


COUNTER = """
calls = 0
function auth_on_register(reg)
    calls = calls + 1
    leaked = reg.client_id
    return calls
end
hooks = {auth_on_register = auth_on_register}
"""


@pytest.mark.parametrize("keep, answers", [("false", [1, 1, 1]), ("true", [1, 2, 3])])
def test_keep_state(tmp_path, keep, answers):
    script = run_script("counter", {"_dir": str(tmp_path)}, COUNTER + f"keep_state = {keep}\n")
    assert script.hooks == ["auth_on_register"] and script.states == 1
    assert [script.call("auth_on_register", {"client_id": "c"}) for _ in answers] == answers


HTTP_SCRIPT = """
http.ensure_pool({pool_id = "p", size = 2})
for i = 1, 3 do
    local ret = http.post("p", "%s/lua", "hello " .. i, {["content-type"] = "text/plain"})
    assert(ret.status == 200, "status")
    assert(http.body(ret.ref) == '{"result": "ok"}', "body")
end
assert(http.post("p", "%s/form", {a = "1 2", b = "&"}).status == 200)
assert(http.get("p", "http://127.0.0.1:1/nothing-listens") == false)
"""


def test_http_module_through_the_webhooks_client(tmp_path):
    with serve(tmp_path) as url:
        run_script("http", {"_dir": str(tmp_path)}, HTTP_SCRIPT % (url, url))
        requests = control(url, "/_requests")
        got = [r for r in requests if r["path"] == "/lua"]
        [form] = [r for r in requests if r["path"] == "/form"]
    assert [r["body"] for r in got] == ["hello 1", "hello 2", "hello 3"]
    assert got[0]["content_type"] == "text/plain"
    assert len({r["peer_port"] for r in got}) == 1  # one kept-alive connection of the pool
    assert form["content_type"] == "application/x-www-form-urlencoded"
    assert sorted(form["body"].split("&")) == ["a=1+2", "b=%26"]
