"""Users' own Lua scripts (vmq_diversity.NAME.file) on a real node, and `vmq-admin script ...`."""

from __future__ import annotations

import pytest
from authkit import BAD_CREDENTIALS, NOT_AUTHORIZED, V3, V5, connack
from broker import Broker, wait_until
from webhooks.endpoint import control, serve

SCRIPT = """
function auth_on_register(reg)
    if reg.username == "lua-user" then
        return obf.decrypt(reg.password) == "%s"
    end
end
function on_register(reg)
    kv.insert("seen", {[reg.client_id] = reg.addr})
end
kv.ensure_table({name = "seen"})
hooks = {auth_on_register = auth_on_register, auth_on_register_m5 = auth_on_register, on_register = on_register}
"""


def conf(path) -> dict[str, str]:
    return {"allow_anonymous": "off", "plugins.vmq_passwd": "off", "plugins.vmq_acl": "off",
            "plugins.vmq_diversity": "on", "vmq_diversity.myscript.file": str(path)}


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "auth.lua"
    path.write_text(SCRIPT % "pw1")
    return path


def test_a_user_script_answers_and_vmq_admin_reloads_it(tmp_path, script):
    node = Broker(tmp_path / "node", conf(script)).start()
    try:
        assert connack(node.port, V3, "c1", "lua-user", "pw1") == 0
        assert connack(node.port, V5, "c1", "lua-user", "nope") == BAD_CREDENTIALS[V5]
        assert connack(node.port, V5, "c1", "someone", "pw1") == NOT_AUTHORIZED[V5]  # nil: next
        [row] = node.rows("script", "show")
        assert row["script"] == str(script) and row["states"] == "1"
        assert "auth_on_register" in row["hooks"] and "on_register" in row["hooks"]

        script.write_text(SCRIPT % "pw2")
        assert node.admin("script", "reload", f"path={script}") == (True, "Script successfully reloaded!")
        assert connack(node.port, V5, "c1", "lua-user", "pw2") == 0
        assert connack(node.port, V5, "c1", "lua-user", "pw1") == BAD_CREDENTIALS[V5]

        script.write_text("hooks = {")  # a syntax error: the loaded version keeps serving
        ok, out = node.admin("script", "reload", f"path={script}")
        assert not ok and "Can't reload script!" in out
        assert connack(node.port, V5, "c1", "lua-user", "pw2") == 0

        assert node.admin("script", "unload", f"path={script}")[0]
        assert connack(node.port, V5, "c1", "lua-user", "pw2") == NOT_AUTHORIZED[V5]
        script.write_text(SCRIPT % "pw3")
        assert node.admin("script", "load", f"path={script}") == (True, "Script successfully loaded!")
        assert connack(node.port, V5, "c1", "lua-user", "pw3") == 0
    finally:
        node.stop()
        node.cleanup()


def test_a_script_that_does_not_load_stops_the_node(tmp_path, script):
    script.write_text("assert(false, 'not today')")
    node = Broker(tmp_path / "node", conf(script))
    with pytest.raises(RuntimeError) as e:
        node.start()
    assert "not today" in str(e.value) and str(script) in str(e.value)
    node.cleanup()


def test_lua_http_and_vmq_webhooks_share_the_connections_of_a_url(tmp_path):
    with serve(tmp_path) as url:
        script = tmp_path / "http.lua"
        script.write_text(f"""
http.ensure_pool({{pool_id = "p"}})
function on_register(reg)
    http.post("p", "{url}/shared", "from lua " .. reg.client_id)
end
hooks = {{on_register = on_register}}
""")
        node = Broker(tmp_path / "node", {**conf(script), "plugins.vmq_webhooks": "on",
                                          "vmq_webhooks.w1.hook": "auth_on_register",
                                          "vmq_webhooks.w1.endpoint": f"{url}/shared"}).start()
        try:
            assert connack(node.port, V3, "c-http", "u", "p") == 0
            got = wait_until(lambda: [r for r in control(url, "/_requests") if r["path"] == "/shared"]
                             if len(control(url, "/_requests")) >= 2 else None, 10, "both requests")
        finally:
            node.stop()
            node.cleanup()
    assert got[0]["hook"] == "auth_on_register" and got[1]["body"] == "from lua c-http"
    assert got[0]["peer_port"] == got[1]["peer_port"]  # one connection, kept alive, for both


def test_bcrypt_salts_have_vmq_bcrypt_default_log_rounds(tmp_path):
    """A script's bcrypt.gen_salt() makes salts of the configured cost: the client whose password is
    that salt's cost gets in."""
    path = tmp_path / "salt.lua"
    path.write_text('function auth_on_register(reg)\n'
                    '    return string.sub(bcrypt.gen_salt(), 1, 7) == "$2b$" .. reg.password .. "$"\n'
                    'end\nhooks = {auth_on_register = auth_on_register}\n')
    node = Broker(tmp_path / "node", {**conf(path), "vmq_bcrypt.default_log_rounds": "5"}).start()
    try:
        assert connack(node.port, V3, "c1", "u", "05") == 0
        assert connack(node.port, V3, "c1", "u", "12") == BAD_CREDENTIALS[V3]
    finally:
        node.stop()
        node.cleanup()
