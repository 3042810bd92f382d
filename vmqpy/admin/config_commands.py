"""vmq-admin config show|reset: which values a node runs with and where they come from (vmq_config_cli).

VerneMQ shows an application's internal environment with its scope: `env`
(the config file), `node` (set on this node) or `global` (set for the whole
cluster). vmqpy's internal configuration is vernemq.conf itself, so the rows
are vernemq.conf keys: `env` as the file (or the default) has it, `node` set
with `vmq-admin set`, `global` set with `vmq-admin set --all`. A key belongs to
the app its first segment names (`vmq_acl.acl_file`: vmq_acl; `plugins.*`:
vmq_plugin), every other key to vmq_server.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vmqpy import config as config_file
from vmqpy.admin.commands import GROUPS, Args, Result, Table, command
from vmqpy.config import ConfigError

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

GROUPS["config"] = "Manages internal configuration values (ADVANCED)"
COLUMNS = ["Config", "Env", "Node", "Global"]
RESET_USAGE = "Usage: vmq-admin config reset app=<App>"


def app_of(key: str) -> str:
    first = key.split(".", 1)[0]
    if first == "plugins":
        return "vmq_plugin"
    return first if first.startswith("vmq_") and "." in key else "vmq_server"


def _apps(node: Node) -> set[str]:
    return {app_of(name) for name, _ in node.config.effective()}


def _global_values(node: Node) -> dict[str, str]:
    """Values set with `vmq-admin set --all`, as the cluster metadata holds them."""
    if node.cluster is None:
        return {}
    from vmqpy.cluster.metadata import CONFIG

    return dict(node.cluster.meta.view(CONFIG).fold(CONFIG))


def _scope(node: Node, key: str, value: str, shared: dict[str, str]) -> str:
    if shared.get(key) == value:
        return "global"
    return "node" if key in node.config.changed else "env"


@command("config", "show")
def config_show(node: Node, args: Args) -> Result:
    """Shows the INTERNAL configuration values for the specified application.

  vmq-admin config show app=<App> [--key=<Key>]

  Since multiple configuration sources are allowed, this command lets you
  inspect whether the config value belongs to the config file (Env) or was
  set on this node (Node) or for the whole cluster (Global, set --all).

  --key=<Key>, -k   the scope and value of one key"""
    app = args.get("app")
    if not app:
        return False, "Please provide an app=<App>"
    if app not in _apps(node):
        return False, "App not configured via vmq_config"
    shared = _global_values(node)
    values = {k: v for k, v in node.config.effective() if app_of(k) == app}
    key = args.get("key", args.get("k"))
    if key is not None:
        if key not in values:
            return False, "not found"
        return True, f"Scope: {_scope(node, key, values[key], shared)}\nValue: {values[key]}"
    rows = []
    for name, value in values.items():
        column = {"env": "Env", "node": "Node", "global": "Global"}[_scope(node, name, value, shared)]
        rows.append({"Config": name, "Env": "", "Node": "", "Global": "", column: value})
    return True, Table(rows, COLUMNS)


@command("config", "reset")
def config_reset(node: Node, args: Args) -> Result:
    """Resets the INTERNAL configuration values set at runtime.

  vmq-admin config reset app=<App> [--key=<Key>] [--local] [--global]
                         [--config-file=<File>] [--config-val=<Value>]

  Resets the values of an application set with `vmq-admin set` (back to the
  config file's value or the default). This is done for all config values of
  an application, but can be limited to a specific item by providing --key.

  --key=<Key>            resets one item rather than the whole app config
  --local                only the value set for this node (a global value is then used if present)
  --global               only the value set for the whole cluster (set --all); this node keeps
                         the value it runs with unless --config-val or --config-file give a new one
  --config-file=<File>   a vernemq.conf style file whose values become the new values
                         of the item (--key) or of every runtime key of the app it holds
  --config-val=<Value>   the new value of the item given with --key"""
    app = args.get("app")
    if not app:
        return False, RESET_USAGE
    if app not in _apps(node):
        return False, "App not configured via vmq_config"
    key = args.get("key")
    if "config-file" in args and "config-val" in args:
        return False, "Specify config file or config value"
    if "config-file" in args and not os.path.isfile(args["config-file"]):
        return False, f"Error: invalid flag value --config-file={args['config-file']}"
    local, shared = "local" in args, "global" in args
    if not local and not shared:
        local = True
    shared_values = _global_values(node)
    keys = [key] if key else sorted({k for k in [*node.config.changed, *shared_values] if app_of(k) == app})
    for name in keys:
        if shared and name in shared_values:
            _forget_global(node, name)
        if local and name in node.config.changed:
            node.config.reset(name)
            if not shared and name in shared_values:  # the cluster's value applies again
                node.config.set(name, shared_values[name])
    try:
        return _new_values(node, app, key, args)
    except ConfigError as e:
        return False, f"Error: {e}"


def _forget_global(node: Node, key: str) -> None:
    from vmqpy.cluster.metadata import CONFIG

    node.cluster.meta.view(CONFIG).delete(CONFIG, key)


def _new_values(node: Node, app: str, key: str | None, args: Args) -> Result:
    """--config-val / --config-file: the values the reset key(s) take now."""
    if "config-val" in args:
        if not key:
            return False, "Error: --config-val needs --key"
        node.config.set(key, args["config-val"])
    elif "config-file" in args:
        try:
            values = dict(config_file.load(args["config-file"]).explicit())
        except ConfigError as e:
            return False, f"No config found for app, due to {e}"
        if key:
            if key not in values:
                return False, "config item not found"
            node.config.set(key, values[key])
        else:
            for name, value in values.items():
                if app_of(name) == app and node.config.settable(name):
                    node.config.set(name, value)
    return True, "Done"
