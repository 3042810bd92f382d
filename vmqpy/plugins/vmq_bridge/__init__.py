"""vmq_bridge: bridges to other MQTT brokers over TCP and TLS (VerneMQ's vmq_bridge plugin).

Plugin entry point for vmqpy/plugins/manager.py. See docs/bridge.md.
"""

from __future__ import annotations

from typing import Any

from vmqpy.plugins.vmq_bridge.plugin import BridgePlugin
from vmqpy.plugins.vmq_bridge.settings import BridgeConfigError, configured_bridges


def start(settings: dict[str, Any], ctx: Any) -> BridgePlugin:
    """Start every configured bridge; a bridge that cannot work stops the start, naming its key."""
    try:
        bridges = configured_bridges(ctx.config, settings)
    except BridgeConfigError as e:
        raise ValueError(str(ctx.config.error(e.key, e.why))) from None
    plugin = BridgePlugin(ctx, bridges)
    plugin.start()
    return plugin
