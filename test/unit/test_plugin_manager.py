"""PluginManager: built-ins, plugins from a directory, runtime enable/disable."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmqpy.plugins.hooks import Hooks
from vmqpy.plugins.manager import PluginError, PluginManager
from vmqpy.plugins.passwd_file import hash_password

TEST_PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


@dataclass
class Spec:
    enabled: bool
    path: str | None = None


@dataclass
class FakeConfig:
    """The two calls the manager makes on vmqpy.config."""
    plugins: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def plugin_settings(self, name):
        return self.settings.get(name, {})


@pytest.fixture
def files(tmp_path):
    passwd, acl = tmp_path / "vmq.passwd", tmp_path / "vmq.acl"
    passwd.write_text(f"u:{hash_password(b'p')}\n")
    acl.write_text("topic write t\n")
    return {"vmq_passwd": {"password_file": str(passwd), "password_reload_interval": 0},
            "vmq_acl": {"acl_file": str(acl), "acl_reload_interval": 0}}


def manager(plugins=None, settings=None, ctx=None):
    hooks = Hooks()
    return hooks, PluginManager(hooks, FakeConfig(plugins or {}, settings or {}), ctx)


def test_builtins_start_by_default(files):
    hooks, mgr = manager(settings=files)
    mgr.start_enabled()
    shown = {p["name"]: p for p in mgr.show()}
    assert list(shown) == ["vmq_passwd", "vmq_acl"]
    assert shown["vmq_passwd"]["builtin"] and shown["vmq_passwd"]["path"] is None
    assert shown["vmq_passwd"]["hooks"] == ["auth_on_register", "auth_on_register_m5"]
    assert set(shown["vmq_acl"]["hooks"]) == {"auth_on_publish", "auth_on_publish_m5",
                                              "auth_on_subscribe", "auth_on_subscribe_m5"}
    peer, sid = ("127.0.0.1", 1), ("", "c")
    assert hooks.all_till_ok("auth_on_register", peer, sid, "u", b"p", True) == ("ok", {})
    assert hooks.all_till_ok("auth_on_publish", "u", sid, 0, "t", b"", False) == ("ok", {})
    assert not hooks.may_block  # both declare hooks_never_block: publishes may be handled in the hub
    mgr.stop_all()
    assert mgr.show() == [] and not hooks.active("auth_on_register")


def test_config_can_turn_builtins_off(files):
    _, mgr = manager({"vmq_acl": Spec(False)}, files)
    mgr.start_enabled()
    assert [p["name"] for p in mgr.show()] == ["vmq_passwd"]


def test_plugin_from_a_directory_rewrites_topic(files):
    ctx = object()
    path_before = list(sys.path)
    hooks, mgr = manager({"vmq_acl": Spec(False), "rewrite_topic": Spec(True, TEST_PLUGINS)},
                         {**files, "rewrite_topic": {"prefix": "tenant1"}}, ctx)
    mgr.start_enabled()
    assert sys.path == path_before
    assert hooks.all_till_ok("auth_on_publish", "u", ("", "c"), 0, "a/b", b"", False) == \
        ("ok", {"topic": "tenant1/a/b"})
    shown = mgr.show()[-1]
    assert shown == {"name": "rewrite_topic", "hooks": ["auth_on_publish"], "path": TEST_PLUGINS,
                     "builtin": False}
    instance = mgr._running["rewrite_topic"].instance
    assert instance.ctx is ctx
    assert hooks.may_block  # no hooks_never_block: the broker calls it from greenlets only
    assert mgr.disable("rewrite_topic") is None and instance.stopped
    assert not hooks.active("auth_on_publish") and not hooks.may_block


def test_chain_order_is_start_order(files):
    hooks, mgr = manager({"rewrite_topic": Spec(True, TEST_PLUGINS)}, files)
    mgr.start_enabled()
    assert hooks.owners("auth_on_publish") == ["vmq_acl", "rewrite_topic"]
    # vmq_acl allows `t` first; for other topics it says next and the rewrite answers
    assert hooks.all_till_ok("auth_on_publish", "u", ("", "c"), 0, "t", b"", False) == ("ok", {})
    assert hooks.all_till_ok("auth_on_publish", "u", ("", "c"), 0, "x", b"", False)[1] == \
        {"topic": "rewritten/x"}


def test_package_plugin_with_relative_import():
    hooks, mgr = manager({"vmq_passwd": Spec(False), "vmq_acl": Spec(False)})
    assert mgr.enable("pkg_plugin", TEST_PLUGINS) is None
    args = (("127.0.0.1", 1), ("", "c"))
    assert hooks.all_till_ok("auth_on_register", *args, "mallory", b"", True) == ("error", "banned")
    assert hooks.all_till_ok("auth_on_register", *args, "alice", b"", True) == ("next", None)
    assert mgr.disable("pkg_plugin") is None
    assert not any(m.startswith("_vmqpy_plugin_pkg_plugin") for m in sys.modules)


def test_runtime_enable_disable(files):
    hooks, mgr = manager({"vmq_acl": Spec(False)}, files)
    mgr.start_enabled()
    assert mgr.enable("vmq_acl") is None
    assert "already enabled" in mgr.enable("vmq_acl")
    assert mgr.disable("vmq_acl") is None
    assert "not enabled" in mgr.disable("vmq_acl")
    assert mgr.enable("vmq_acl", settings={"acl_file": files["vmq_acl"]["acl_file"],
                                           "acl_reload_interval": 0}) is None
    assert hooks.owners("auth_on_publish") == ["vmq_acl"]


@pytest.mark.parametrize("name, path, message", [
    ("broken_start", TEST_PLUGINS, "cannot reach the auth database"),
    ("no_such_plugin", None, "no built-in plugin"),
    ("no_such_plugin", TEST_PLUGINS, "neither no_such_plugin.py"),
    ("hooks", None, "has no start"),
    ("../etc", None, "not a valid plugin"),
])
def test_runtime_enable_failure_returns_the_error(name, path, message):
    hooks, mgr = manager()
    error = mgr.enable(name, path)
    assert error and message in error and name in error
    assert mgr.show() == []


def test_bad_plugin_refuses_node_start_and_stops_the_others(files):
    hooks, mgr = manager({"broken_start": Spec(True, TEST_PLUGINS)}, files)
    with pytest.raises(PluginError, match="broken_start failed to start"):
        mgr.start_enabled()
    assert mgr.show() == [] and not hooks.active("auth_on_register")
