"""A node starts from VerneMQ's own configuration: the vernemq.conf VerneMQ 2.x generates (every visible
key at its default, from test/vernemq_keys/keys.json) and the examples of VerneMQ's documentation
(test/vernemq_keys/docs_examples/). Only what a test machine needs changes: listener addresses (free
ports), files (test certificates, temp files) and where the node keeps its data and socket."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from broker import free_port
from clients import Raw

from vmqpy.config_schema import lookup
from vmqpy.config_types import Address
from vmqpy.config_types import Path as PathType

HERE = Path(__file__).resolve().parent.parent / "vernemq_keys"
sys.path.insert(0, str(HERE))
from coverage import classify, table  # noqa: E402
from pending import PENDING_APPS  # noqa: E402

ROWS = {row["key"]: row for row in table()}
PATTERNS = [(re.compile(re.sub(r"\\\$\w+", r"[\\w-]+", re.escape(k))), row) for k, row in ROWS.items()]
# what a docs example sets that vmqpy refuses on purpose, and why
REFUSED = {
    "listener.ssl.psk_support": "TLS-PSK: Python 3.11's ssl module has none",
    "listener.ssl.ciphers": "PSK cipher suites (only with TLS-PSK)",
    "vmq_bridge.tcp.br0.topic.2": "'$SYS/* in remote' has one prefix: VerneMQ's own schema refuses it too",
    "vmq_bridge.ssl.br0": "a bridge without topic.N lines: it would carry nothing, vmqpy refuses it",
}
EXAMPLE_PLUGIN = re.compile(r"plugins\.myplugin(\..*)?")  # the docs' placeholder of a plugin of your own


def vernemq_row(key: str) -> dict | None:
    return ROWS.get(key) or next((row for pattern, row in PATTERNS if pattern.fullmatch(key)), None)


def stock_conf() -> dict[str, str]:
    """Every `key = default` line VerneMQ 2.x writes into the vernemq.conf it generates."""
    lines = (row["conf"] for row in ROWS.values() if row["conf"] and not row["conf"].startswith("#"))
    return dict(line.split(" = ", 1) for line in lines)


def example_conf(page: Path) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in page.read_text().splitlines() if not line.startswith("#"))


def runnable(conf: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the settings vmqpy takes, the ones left out with why): keys of pending work (pending.py)
    and the few REFUSED on purpose are left out."""
    kept, left = {}, {}
    for key, value in conf.items():
        row = vernemq_row(key)
        plugin = key.split(".")[1] if key.startswith("plugins.") else None
        refused = next((REFUSED[k] for k in REFUSED if key == k or key.startswith(k + ".")), None)
        if refused:
            left[key] = refused
        elif EXAMPLE_PLUGIN.fullmatch(key):
            left[key] = "the docs' placeholder plugin"
        elif (row and classify(row) == "pending") or (plugin in PENDING_APPS and value == "on") or (
                key.endswith("http_modules") and any(app in value for app in PENDING_APPS)):
            left[key] = "pending work (test/vernemq_keys/pending.py)"
        else:
            kept[key] = value
    return kept, left


def is_address(key: str) -> bool:
    found = lookup(key)
    return found is not None and isinstance(found[0].type, Address)


def localise(conf: dict[str, str], root: Path, pki) -> dict[str, str]:
    """Listener addresses on free local ports; certificates the test's; other absolute paths under
    `root`, relative ones left to resolve against it (the config file's directory). A file a key names
    (acl_file, password_file, ...) exists, empty."""
    certs = {"cafile": pki.ca, "certfile": pki.server_cert, "keyfile": pki.server_key}
    out = {}
    for key, value in conf.items():
        found = lookup(key)
        option = key.rsplit(".", 1)[-1]
        if is_address(key):
            value = f"127.0.0.1:{free_port()}"
        elif found and isinstance(found[0].type, PathType) and value:
            if option in certs:
                value = certs[option]
            elif value.startswith("/"):
                value = str(root / "abs" / key)
            if option.endswith("file") and option not in certs:
                target = root / value
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
        out[key] = value
    for key in [k for k in out if is_address(k) and k.split(".")[1] in ("ssl", "wss", "https")]:
        kind = ".".join(key.split(".")[:2])  # a TLS listener needs a certificate: the test's, if none
        for option, path in certs.items():
            if not any(f"{level}.{option}" in out for level in (kind, key)):
                out[f"{key}.{option}"] = path
    return out


def start_from(make_broker, conf: dict[str, str], pki):
    node = make_broker(start=False)
    local = localise(conf, node.root, pki)
    # VerneMQ's values win over the test node's own, except where it keeps its admin socket
    node.conf.update({k: v for k, v in local.items() if k != "admin.socket"})
    node.port = int(node.conf["listener.tcp.default"].rsplit(":", 1)[1])
    return node.start(), local


def running_listeners(node) -> set[str]:
    return {r["port"] for r in node.rows("listener", "show") if r["status"] == "running"}


def test_vernemq_2_stock_config_starts_a_node(make_broker, pki, cid):
    conf, left = runnable(stock_conf())
    assert len(conf) + len(left) == 103  # the lines VerneMQ 2.x writes (issue 19)
    node, local = start_from(make_broker, conf, pki)
    log = node.log_text()
    for key in ("erlang.async_threads", "leveldb.maximum_memory.percent", "metadata_plugin"):
        assert f"ignored: {key} (no effect in vmqpy: " in log
    assert {local["listener.http.default"].rsplit(":", 1)[1], str(node.port)} <= running_listeners(node)
    # VerneMQ's defaults are in force: no anonymous clients, vmq_passwd decides
    assert Raw(node.port).connect(cid).reason_code == 5
    ok, out = node.admin("show", "prometheus_namespace", "log.console.rotation.size")
    assert ok and "vernemq_" in out and "infinity" in out


PAGES = sorted((HERE / "docs_examples").glob("*.conf"))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_vernemq_docs_example_starts_a_node(make_broker, pki, page):
    conf, left = runnable(example_conf(page))
    if not conf:
        pytest.skip(f"every key of {page.name} belongs to pending work: {', '.join(left)}")
    node, local = start_from(make_broker, conf, pki)
    ports = {v.rsplit(":", 1)[1] for k, v in local.items()
             if is_address(k) and k.startswith("listener.") and not k.startswith("listener.vmq")}
    assert ports <= running_listeners(node), node.log_text()
