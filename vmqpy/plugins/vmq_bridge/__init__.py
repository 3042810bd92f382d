"""vmq_bridge: bridges to other MQTT brokers over TCP and TLS (VerneMQ's vmq_bridge plugin).

Plugin entry point for vmqpy/plugins/manager.py. See docs/bridge.md.
"""

from __future__ import annotations

from typing import Any

from vmqpy.plugins.vmq_bridge.plugin import BridgePlugin
from vmqpy.plugins.vmq_bridge.settings import BridgeConfigError, BridgeSettings, configured_bridges


def bridges(config: Any, settings: dict[str, Any]) -> list[BridgeSettings]:
    """The configured bridges; a ConfigError (file, line, key, why) for one that cannot work
    (also what `vernemq chkconfig` checks)."""
    try:
        return configured_bridges(config, settings)
    except BridgeConfigError as e:
        raise config.error(e.key, e.why) from None


def check(settings: dict[str, Any], config: Any) -> tuple[str, str] | None:
    """What `vernemq chkconfig` and the start check before a port opens: (key, why) of a bridge that
    cannot work."""
    try:
        configured_bridges(config, settings)
    except BridgeConfigError as e:
        return e.key, e.why
    return None


def start(settings: dict[str, Any], ctx: Any) -> BridgePlugin:
    """Start every configured bridge; a bridge that cannot work stops the start, naming its key."""
    plugin = BridgePlugin(ctx, bridges(ctx.config, settings))
    plugin.start()
    return plugin
