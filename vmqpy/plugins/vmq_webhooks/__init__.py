"""vmq_webhooks: every hook can be answered by HTTP endpoints (VerneMQ's webhooks).

Plugin entry point for vmqpy/plugins/manager.py. See docs/webhooks.md.
"""

from __future__ import annotations

import logging
from typing import Any

from vmqpy.plugins.vmq_webhooks.plugin import WebhooksPlugin
from vmqpy.plugins.vmq_webhooks.settings import configured_webhooks

log = logging.getLogger(__name__)


def start(settings: dict[str, Any], ctx: Any) -> WebhooksPlugin:
    """Start the plugin with the `vmq_webhooks.*` settings and register the configured webhooks."""
    webhooks = configured_webhooks(settings)  # a bad group stops the start, as cuttlefish would
    plugin = WebhooksPlugin(ctx.hooks, settings)
    for hook, endpoint, opts in webhooks:
        try:
            plugin.register(hook, endpoint, opts)
        except ValueError as e:
            log.error("failed to register the webhook %s %s due to %s", hook, endpoint, e)
    return plugin
