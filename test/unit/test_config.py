"""vernemq.conf parsing, validation, defaults, paths, listeners, plugins and the shipped etc/vernemq.conf."""

import math
import os
import re

import pytest

from vmqpy import config
from vmqpy.config_schema import KEYS, lookup

ETC = os.path.join(os.path.dirname(__file__), "..", "..", "etc")
CONF = os.path.join(ETC, "vernemq.conf")


def parse(text: str, base_dir: str = "/base") -> config.Config:
    return config.parse_text(text, "test.conf", base_dir=base_dir)


def error_of(text: str) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as info:
        parse(text)
    return info.value


def test_defaults():
    cfg = parse("")
    assert cfg["nodename"] == "VerneMQ@127.0.0.1"
    assert cfg["allow_anonymous"] is False
    assert cfg["max_inflight_messages"] == 20
    assert cfg["retry_interval"] == 20
    assert cfg["persistent_client_expiration"] == 0
    assert cfg["queue_type"] == "fifo"
    assert cfg["plugins.vmq_acl"] is True
    assert cfg.get("no.such.key", "x") == "x"
    assert cfg.listeners == []
    with pytest.raises(KeyError):
        cfg["listener.tcp.nosuch"]


@pytest.mark.parametrize(("key", "text", "value"), [
    ("allow_anonymous", "on", True),
    ("allow_anonymous", "false", False),
    ("max_inflight_messages", "7", 7),
    ("max_online_messages", "-1", -1),
    ("listener.max_connections", "infinity", math.inf),
    ("retry_interval", "30s", 30),
    ("persistent_client_expiration", "2h", 7200),
    ("persistent_client_expiration", "1d", 86400),
    ("persistent_client_expiration", "1w", 604800),
    ("max_last_will_delay", "client", 2**32 - 1),
    ("max_message_size", "64KB", 65536),
    ("queue_deliver_mode", "balance", "balance"),
    ("listener.allowed_protocol_versions", "4,5", [4, 5]),
    ("graphite_prefix", "my prefix", "my prefix"),
])
def test_value_types(key, text, value):
    assert parse(f"{key} = {text}")[key] == value


@pytest.mark.parametrize(("text", "why"), [
    ("allow_anonymous = yes", "expected on or off"),
    ("max_inflight_messages = many", "expected an integer"),
    ("max_inflight_messages = -1", "expected an integer >= 0"),
    ("receive_max_client = 70000", "<= 65535"),
    ("retry_interval = 5 minutes", "expected seconds"),
    ("queue_type = random", "expected one of fifo, lifo"),
    ("listener.allowed_protocol_versions = 3,6", "6 is not one of 3, 4, 5"),
    ("listener.tcp.default = localhost", "expected IP:PORT"),
    ("listener.tcp.default = 127.0.0.1:70000", "out of range"),
    ("nodename = VerneMQ", "expected name@host"),
])
def test_bad_values_name_file_line_key_and_why(text, why):
    err = error_of(f"# a comment\n\n{text}\n")
    key = text.split("=")[0].strip()
    assert (err.file, err.line, err.key) == ("test.conf", 3, key)
    assert why in err.why
    assert str(err).startswith(f"test.conf:3: {key}: ")


def test_unknown_key_rejected_with_its_line():
    err = error_of("allow_anonymous = on\nmax_inflght_messages = 3\n")
    assert (err.line, err.key) == (2, "max_inflght_messages")
    assert err.why == "unknown key (did you mean max_inflight_messages?)"
    # an option name is not a listener name, and TLS options do not exist for tcp
    assert error_of("listener.tcp.cafile = 1.2.3.4:1").why.startswith("unknown key")


def test_syntax_errors():
    err = error_of("a.b = 1\njunk\n")
    assert (err.line, err.key) == (2, "junk")
    err = error_of("allow_anonymous = on\nqueue_type = fifo\nallow_anonymous = off\n")
    assert (err.line, err.key, err.why) == (3, "allow_anonymous", "duplicate key, first set at line 1")
    err = error_of("nodename = a@b\n [ section ]\na = 1\n")
    assert (err.line, err.why) == (2, "sections are not part of vernemq.conf")


def test_comments_and_quoted_hash_in_values():
    cfg = parse('queue_type = lifo # newest first\nvmq_bridge.tcp.b = 10.0.0.1:1883\n'
                'vmq_bridge.tcp.b.topic.1 = "a/# both 1"\nvmq_bridge.tcp.b.topic.2 = b/#')
    assert cfg["queue_type"] == "lifo"
    assert (cfg["vmq_bridge.tcp.b.topic.1"].pattern, cfg["vmq_bridge.tcp.b.topic.1"].direction) == ("a/#", "both")
    assert cfg["vmq_bridge.tcp.b.topic.2"].pattern == "b/"  # an unquoted # starts a comment


def test_listener_inheritance_three_levels():
    cfg = parse("""
listener.max_connections = 500
listener.mountpoint = top/
listener.tcp.max_connections = 300
listener.tcp.a = 127.0.0.1:1883
listener.tcp.b = 0.0.0.0:1884
listener.tcp.b.max_connections = 100
listener.tcp.b.allowed_protocol_versions = 5
listener.ws.w = [::1]:8080
listener.ssl.s = 127.0.0.1:8883
listener.ssl.certfile = cert.pem
listener.ssl.s.require_certificate = on
""")
    listeners = {(lst.kind, lst.name): lst for lst in cfg.listeners}
    a, b, w, s = (listeners[k] for k in [("tcp", "a"), ("tcp", "b"), ("ws", "w"), ("ssl", "s")])
    assert (a.host, a.port, b.host, b.port, w.host) == ("127.0.0.1", 1883, "0.0.0.0", 1884, "::1")
    assert a.opts["max_connections"] == 300 and b.opts["max_connections"] == 100
    assert w.opts["max_connections"] == 500
    assert a.opts["mountpoint"] == w.opts["mountpoint"] == "top/"
    assert a.opts["allowed_protocol_versions"] == [3, 4, 5, 131, 132] and b.opts["allowed_protocol_versions"] == [5]
    assert a.opts["nr_of_acceptors"] == 10 and a.opts["proxy_protocol"] is False
    assert "cafile" not in a.opts
    assert s.opts["certfile"] == "/base/cert.pem" and s.opts["require_certificate"] is True
    assert s.opts["keyfile"] == "" and s.opts["tls_version"] == "tlsv1.2"
    assert [lst.name for lst in cfg.listeners] == ["a", "b", "w", "s"]  # file order


def test_options_of_an_undefined_listener_are_ignored_as_vernemq_does():
    cfg = parse("listener.tcp.x.mountpoint = a\n")
    assert cfg.listeners == []
    assert cfg.ignored() == [("listener.tcp.x.mountpoint", "listener.tcp.x is not set, so there is no such listener")]


def test_paths_substitution_and_relative_resolution(tmp_path):
    text = "platform_data_dir = d\nlog.console.file = $(platform_log_dir)/c.log\n"
    cfg = parse(text, base_dir=str(tmp_path))
    assert cfg["platform_data_dir"] == str(tmp_path / "d")
    assert cfg["message_store.dir"] == str(tmp_path / "d" / "msgstore")
    assert cfg["metadata.dir"] == str(tmp_path / "d" / "meta")
    assert cfg["admin.socket"] == str(tmp_path / "d" / "vmq.sock")
    assert cfg["log.console.file"] == str(tmp_path / "log" / "c.log")
    assert cfg["log.error.file"] == str(tmp_path / "log" / "error.log")
    assert cfg["vmq_passwd.password_file"] == str(tmp_path / "vmq.passwd")
    assert parse("platform_data_dir = /abs/x")["message_store.dir"] == "/abs/x/msgstore"
    assert error_of("metadata.dir = $(nope)/m").why == "$(nope): no such key"
    assert error_of("platform_data_dir = $(metadata.dir)").why == "circular $(...) reference"


def test_load_resolves_against_the_config_location_not_the_cwd(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "vernemq.conf").write_text("platform_log_dir = logs\n")
    monkeypatch.chdir(tmp_path)
    cfg = config.load("conf/vernemq.conf")
    assert cfg.path == str(conf_dir / "vernemq.conf")
    assert cfg["platform_etc_dir"] == str(conf_dir)
    assert cfg["vmq_acl.acl_file"] == str(conf_dir / "vmq.acl")
    assert cfg["platform_log_dir"] == str(conf_dir / "logs")
    with pytest.raises(config.ConfigError, match="cannot read it"):
        config.load("missing.conf")


def test_release_layout_resolves_against_the_root_above_etc(tmp_path, monkeypatch):
    etc = tmp_path / "rel" / "etc"
    etc.mkdir(parents=True)
    (etc / "vernemq.conf").write_text("platform_data_dir = ./data\n")
    monkeypatch.chdir("/")
    cfg = config.load(str(etc / "vernemq.conf"))
    assert cfg["platform_data_dir"] == str(tmp_path / "rel" / "data")
    assert cfg["platform_etc_dir"] == str(etc)


def test_plugin_specs_and_settings():
    cfg = parse("""
plugins.vmq_webhooks = on
plugins.myplug = on
plugins.myplug.path = /opt/myplug
myplug.db.host = db1
myplug.size = 5
vmq_acl.acl_reload_interval = 3
vmq_webhooks.w1.hook = auth_on_register
vmq_webhooks.w1.endpoint = http://127.0.0.1/auth
""")
    assert cfg.plugins["myplug"] == config.PluginSpec(True, "/opt/myplug")
    assert cfg.plugins["vmq_webhooks"] == config.PluginSpec(True, None)
    assert cfg.plugins["vmq_bridge"] == config.PluginSpec(False, None)
    assert cfg.plugin_settings("myplug") == {"db.host": "db1", "size": "5"}
    assert cfg.plugin_settings("vmq_acl") == {"acl_file": "/base/vmq.acl", "acl_reload_interval": 3}
    hooks = cfg.plugin_settings("vmq_webhooks")
    assert hooks["w1.hook"] == "auth_on_register" and hooks["pool_max_connections"] == 100
    assert cfg["vmq_webhooks.w1.base64encode"] is True  # a named setting's default
    # settings of a plugin nobody names in a plugins.NAME line are unknown keys
    assert error_of("otherplug.x = 1").why == "unknown key"
    assert error_of("vmq_webhooks.w2.hook = on_publish").why == "vmq_webhooks.w2.endpoint is not set"


def test_runtime_set():
    cfg = parse("")
    cfg.set("max_inflight_messages", "5")
    cfg.set("allow_anonymous", "on")
    assert cfg["max_inflight_messages"] == 5 and cfg["allow_anonymous"] is True
    assert ("max_inflight_messages", "5") in cfg.effective()
    with pytest.raises(config.ConfigError) as info:
        cfg.set("max_inflight_messages", "x")
    assert str(info.value).startswith("max_inflight_messages: expected an integer")
    assert cfg["max_inflight_messages"] == 5
    with pytest.raises(config.ConfigError, match="cannot be changed at runtime"):
        cfg.set("nodename", "a@b")
    with pytest.raises(config.ConfigError, match="unknown key"):
        cfg.set("nope", "1")


def test_effective_lists_every_key_as_text():
    cfg = parse("listener.tcp.default = 127.0.0.1:1883\nplugins.p = on\np.x = 1\n")
    effective = dict(cfg.effective())
    assert effective["listener.tcp.default"] == "127.0.0.1:1883"
    assert effective["persistent_client_expiration"] == "never"
    assert effective["allow_anonymous"] == "off"
    assert effective["p.x"] == "1"
    defaulted = [key.name for key in KEYS if not key.is_pattern and (key.default or key.parent)]
    assert all(name in effective for name in [*defaulted, "platform_etc_dir"])
    # the effective text reads back to the same values
    again = parse("\n".join(f"{k} = {v}" for k, v in cfg.effective()))
    assert again.effective() == cfg.effective()


# -- the shipped configuration ----------------------------------------------------------------------------

def _conf_lines() -> list[tuple[str, str, bool]]:
    """(key, value, commented) of every `key = value` line of etc/vernemq.conf, commented or not."""
    with open(CONF) as file:
        matches = (re.fullmatch(r"(# )?([\w.$()-]+) =(.*)", line.rstrip("\n")) for line in file)
        return [(m.group(2), m.group(3).strip(), bool(m.group(1))) for m in matches if m]


def test_shipped_conf_loads_cleanly():
    cfg = config.load(CONF)
    assert [(lst.kind, lst.host, lst.port) for lst in cfg.listeners] == [
        ("tcp", "127.0.0.1", 1883), ("http", "127.0.0.1", 8888), ("vmq", "127.0.0.1", 44053)]
    assert cfg["allow_anonymous"] is True
    assert cfg["platform_data_dir"] == os.path.join(os.getcwd(), "data")
    assert cfg["platform_log_dir"] == os.path.join(os.getcwd(), "log")
    assert os.path.isfile(cfg["vmq_acl.acl_file"]) and os.path.isfile(cfg["vmq_passwd.password_file"])


def test_every_schema_key_is_documented_in_shipped_conf():
    names = {name for name, _, _ in _conf_lines()}
    for key in KEYS:
        pattern = re.compile(re.sub(r"\\\$\w+", r"[\\w-]+", re.escape(key.name)))
        assert any(pattern.fullmatch(name) and lookup(name)[0] is key for name in names), key.name


def test_commented_examples_in_shipped_conf_are_valid_values():
    for name, value, _ in _conf_lines():
        key = lookup(name)[0]
        key.type.parse(value.replace("$(platform_etc_dir)", "/etc"), "/")
