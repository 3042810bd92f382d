"""`vmq-admin plugin ...`, `vmq-admin webhooks ...`, `vmq-admin bridge show` and `vmq-admin script ...`:
plugins managed at runtime.

Registered on the command tree of vmqpy/admin/commands.py (imported at its end);
each docstring is the command's `--help` text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vmqpy.admin.commands import Args, Result, Table, _usage_error, command

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

WEBHOOKS = "vmq_webhooks"
BRIDGE = "vmq_bridge"
_NO_WEBHOOKS = (False, "Error: the vmq_webhooks plugin is not enabled "
                       "(vmq-admin plugin enable --name=vmq_webhooks)")
_REGISTER = "webhooks register hook=HOOK endpoint=URL [--base64payload=true|false] " \
            "[--no_payload=true|false] [--response_timeout=MS]"


@command("plugin", "show")
def plugin_show(node: Node, args: Args) -> Result:
    """Show the running plugins and the hooks they answer.

  --plugin=NAME   only this plugin"""
    rows: list[dict[str, Any]] = []
    for p in node.plugins.show():
        if args.get("plugin", p["name"]) != p["name"]:
            continue
        first = {"Plugin": p["name"], "Type": "built-in" if p["builtin"] else "path", "Path": p["path"] or ""}
        # One line per hook, the plugin named on its first, as VerneMQ prints it.
        for i, hook in enumerate(p["hooks"] or [""]):
            rows.append({**(first if i == 0 else {}), "Hook(s)": hook})
    return True, Table(rows, ["Plugin", "Type", "Hook(s)", "Path"])


@command("plugin", "enable")
def plugin_enable(node: Node, args: Args) -> Result:
    """Start a plugin: --name=NAME [--path=DIR] (DIR holds NAME.py or a NAME/ package)."""
    if not args.get("name"):
        return _usage_error("plugin enable --name=NAME [--path=DIR]")
    error = node.plugins.enable(args["name"], args.get("path") or None)
    return (False, error) if error else (True, "Done")


@command("plugin", "disable")
def plugin_disable(node: Node, args: Args) -> Result:
    """Stop a running plugin: --name=NAME."""
    if not args.get("name"):
        return _usage_error("plugin disable --name=NAME")
    error = node.plugins.disable(args["name"])
    return (False, error) if error else (True, "Done")


def _webhooks(node: Node) -> Any:
    return node.plugins.instance(WEBHOOKS)


def _target(args: Args) -> tuple[str, str, dict[str, str]] | None:
    """(hook, endpoint, the other flags) of a register/deregister command line."""
    opts = dict(args)
    hook, endpoint = opts.pop("hook", ""), opts.pop("endpoint", "")
    return (hook, endpoint, opts) if hook and endpoint else None


@command("webhooks", "register")
def webhooks_register(node: Node, args: Args) -> Result:
    """Register a webhook: hook=HOOK endpoint=URL [--base64payload=true|false]
  [--no_payload=true|false] [--response_timeout=MS]"""
    plugin, target = _webhooks(node), _target(args)
    if plugin is None:
        return _NO_WEBHOOKS
    if target is None:
        return _usage_error(_REGISTER)
    hook, endpoint, opts = target
    try:
        plugin.register(hook, endpoint, opts)
    except ValueError as e:
        return False, f"Error: {e}"
    return True, "Done"


@command("webhooks", "deregister")
def webhooks_deregister(node: Node, args: Args) -> Result:
    """Deregister a webhook: hook=HOOK endpoint=URL"""
    plugin, target = _webhooks(node), _target(args)
    if plugin is None:
        return _NO_WEBHOOKS
    if target is None:
        return _usage_error("webhooks deregister hook=HOOK endpoint=URL")
    try:
        plugin.deregister(*target[:2])
    except ValueError as e:
        return False, f"Error: {e}"
    return True, "Done"


@command("webhooks", "show")
def webhooks_show(node: Node, args: Args) -> Result:
    """Show the registered webhooks."""
    plugin = _webhooks(node)
    if plugin is None:
        return _NO_WEBHOOKS
    return True, Table(plugin.show(), ["hook", "endpoint", "base64payload", "no_payload", "response_timeout"])


@command("webhooks", "cache", "show")
def webhooks_cache_show(node: Node, args: Args) -> Result:
    """Show the auth cache statistics (entries, hits, misses per endpoint and hook).

  --reset   set the hit and miss counters to zero after showing them"""
    plugin = _webhooks(node)
    if plugin is None:
        return _NO_WEBHOOKS
    table = Table(plugin.cache_stats(), ["stat", "endpoint", "hook", "value"])
    if "reset" in args:
        plugin.cache_reset_stats()
    return True, table


@command("webhooks", "cache", "clear")
def webhooks_cache_clear(node: Node, args: Args) -> Result:
    """Forget every cached auth answer."""
    plugin = _webhooks(node)
    if plugin is None:
        return _NO_WEBHOOKS
    plugin.cache_clear()
    return True, "Done"


@command("bridge", "show")
def bridge_show(node: Node, args: Args) -> Result:
    """Show information about bridges (VerneMQ's columns, then the state of each connection)."""
    plugin = node.plugins.instance(BRIDGE)
    if plugin is None:
        return False, "Error: the vmq_bridge plugin is not enabled (plugins.vmq_bridge = on)"
    from vmqpy.plugins.vmq_bridge.plugin import SHOW_COLUMNS

    return True, Table(plugin.show(), SHOW_COLUMNS)


DIVERSITY = "vmq_diversity"
_NO_DIVERSITY = (False, "Error: the vmq_diversity plugin is not enabled "
                        "(vmq-admin plugin enable --name=vmq_diversity)")


@command("script", "show")
def script_show(node: Node, args: Args) -> Result:
    """Show the loaded Lua scripts of vmq_diversity: their Lua states and hooks."""
    plugin = node.plugins.instance(DIVERSITY)
    if plugin is None:
        return _NO_DIVERSITY
    return True, Table(plugin.show(), ["script", "states", "keep_state", "hooks"])


def _script_command(node: Node, args: Args, action: str, done: str) -> Result:
    plugin = node.plugins.instance(DIVERSITY)
    if plugin is None:
        return _NO_DIVERSITY
    if not args.get("path"):
        return _usage_error(f"script {action} path=FILE")
    try:
        getattr(plugin, f"{action}_script")(args["path"])
    except ValueError as e:  # ScriptError too: a script that does not load
        return False, f"Can't {action} script! {e}"
    return True, done


@command("script", "load")
def script_load(node: Node, args: Args) -> Result:
    """Load a Lua script file: path=FILE"""
    return _script_command(node, args, "load", "Script successfully loaded!")


@command("script", "reload")
def script_reload(node: Node, args: Args) -> Result:
    """Reload a Lua script file: path=FILE"""
    return _script_command(node, args, "reload", "Script successfully reloaded!")


@command("script", "unload")
def script_unload(node: Node, args: Args) -> Result:
    """Unload a Lua script file: path=FILE"""
    return _script_command(node, args, "unload", "Script successfully unloaded!")
