"""vmq_http_pub as a plugin: VerneMQ configs enable it with `plugins.vmq_http_pub = on`.

The work is done by the HTTP module of that name (vmqpy/admin/http_pub.py) on the
listeners whose http_modules name it; the plugin has no hooks.
"""

from __future__ import annotations

from typing import Any


class HttpPub:
    hooks_never_block = True


def start(settings: dict[str, Any], ctx: object) -> HttpPub:
    return HttpPub()
