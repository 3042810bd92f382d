"""vmq_webhooks.* settings and vmq-admin flags -> typed options.

Keys and defaults are VerneMQ's vmq_webhooks.schema: per webhook NAME
`NAME.hook`, `NAME.endpoint`, `NAME.base64encode` (on), `NAME.no_payload`
(off), `NAME.response_timeout` (5000 ms); webhooks register in NAME order.
"""

from __future__ import annotations

from typing import Any

from vmqpy.plugins.vmq_webhooks.codec import SIGNATURES, EndpointOpts

_PER_HOOK = ("hook", "endpoint", "base64encode", "no_payload", "response_timeout")
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


def flag(value: Any) -> bool:
    """A boolean from config/CLI text ("on", "true", ...) or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"not a boolean: {value!r}")


def check_hook(hook: str) -> str:
    if hook not in SIGNATURES:
        raise ValueError(f"invalid hook {hook!r}")
    return hook


def endpoint_opts(base64_payload: Any = True, no_payload: Any = False,
                  response_timeout: Any = 5000) -> EndpointOpts:
    return EndpointOpts(flag(base64_payload), flag(no_payload), int(response_timeout))


def cli_opts(flags: dict[str, Any]) -> EndpointOpts:
    """Options from `vmq-admin webhooks register` flags (base64payload, no_payload, response_timeout)."""
    unknown = set(flags) - {"base64payload", "no_payload", "response_timeout"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    renamed = {("base64_payload" if k == "base64payload" else k): v for k, v in flags.items()}
    return endpoint_opts(**renamed)


def configured_webhooks(settings: dict[str, Any]) -> list[tuple[str, str, EndpointOpts]]:
    """(hook, endpoint, options) of every `vmq_webhooks.NAME.*` group, sorted by NAME."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        name, _, suffix = key.rpartition(".")
        if name and suffix in _PER_HOOK:
            groups.setdefault(name, {})[suffix] = value
    webhooks = []
    for name in sorted(groups):
        group = groups[name]
        for required in ("hook", "endpoint"):
            if not group.get(required):
                raise ValueError(f"vmq_webhooks.{name}.{required} is not defined")
        opts = endpoint_opts(group.get("base64encode", True), group.get("no_payload", False),
                             group.get("response_timeout", 5000))
        webhooks.append((check_hook(str(group["hook"])), str(group["endpoint"]), opts))
    return webhooks
