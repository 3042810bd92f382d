"""The webhooks plugin: endpoints per hook, hook functions, the vmq-admin API."""

from __future__ import annotations

import functools
import ssl
from typing import Any

from vmqpy.plugins.hooks import ERROR, NEXT, OK, Hooks
from vmqpy.plugins.vmq_webhooks import codec
from vmqpy.plugins.vmq_webhooks.cache import AuthCache
from vmqpy.plugins.vmq_webhooks.codec import EndpointOpts
from vmqpy.plugins.vmq_webhooks.events import EventQueue, ThrottledLog
from vmqpy.plugins.vmq_webhooks.http import POOLS, EndpointPool, WebhookFailure, tls_context
from vmqpy.plugins.vmq_webhooks.settings import check_hook, cli_opts

OWNER = "vmq_webhooks"


def owner(hook: str) -> str:
    # One owner per hook: Hooks.unregister(owner) drops every function of an
    # owner, and deregistering one hook must leave the others in place.
    return f"{OWNER}:{hook}"


class WebhooksPlugin:
    """Registered (hook, endpoint) pairs and the HTTP pools behind them.

    Deliberately has no methods named after hooks: hook functions enter the
    registry only while an endpoint is registered for them, so unused hooks
    cost the broker nothing.
    """

    def __init__(self, hooks: Hooks, settings: dict[str, Any]) -> None:
        self._hooks = hooks
        self._settings = settings
        self._endpoints: dict[str, list[tuple[str, EndpointOpts]]] = {}  # hook -> call order
        self._pools: dict[str, EndpointPool] = {}
        self._tls: ssl.SSLContext | None = None
        self._throttled = ThrottledLog()
        self.cache = AuthCache()
        self.events = EventQueue(self._post_event, self._throttled)

    # -- vmq-admin webhooks ...

    def register(self, hook: str, endpoint: str, opts: EndpointOpts | dict[str, Any] | None = None) -> None:
        """`webhooks register hook=H endpoint=E`; opts: base64payload, no_payload, response_timeout."""
        check_hook(hook)
        opts = opts if isinstance(opts, EndpointOpts) else cli_opts(opts or {})
        chain = self._endpoints.get(hook, [])
        if any(ep == endpoint for ep, _ in chain):
            raise ValueError("already_registered")
        if endpoint not in self._pools:
            self._pools[endpoint] = POOLS.acquire(
                endpoint, int(self._settings.get("pool_max_connections", 100)),
                int(self._settings.get("pool_timeout", 60000)) / 1000,
                self._tls_context() if endpoint.startswith("https:") else None)
        self._endpoints[hook] = chain + [(endpoint, opts)]  # oldest first, as VerneMQ calls them
        if not chain:
            self._hooks.register(owner(hook), hook, self._hook_function(hook))

    def deregister(self, hook: str, endpoint: str) -> None:
        """`webhooks deregister hook=H endpoint=E`."""
        chain = [(ep, o) for ep, o in self._endpoints.get(hook, ()) if ep != endpoint]
        if len(chain) == len(self._endpoints.get(hook, ())):
            raise ValueError("not_found")
        if chain:
            self._endpoints[hook] = chain
        else:
            del self._endpoints[hook]
            self._hooks.unregister(owner(hook))
        if not any(ep == endpoint for eps in self._endpoints.values() for ep, _ in eps):
            self._pools.pop(endpoint)
            POOLS.release(endpoint)

    def show(self) -> list[dict[str, Any]]:
        """Rows of `webhooks show`."""
        return [{"hook": hook, "endpoint": ep, "base64payload": o.base64_payload,
                 "no_payload": o.no_payload, "response_timeout": o.response_timeout}
                for hook, chain in sorted(self._endpoints.items()) for ep, o in chain]

    def cache_stats(self) -> list[dict[str, Any]]:
        """Rows of `webhooks cache show`."""
        return self.cache.stats()

    def cache_reset_stats(self) -> None:
        """`webhooks cache show --reset`."""
        self.cache.reset_stats()

    def cache_clear(self) -> None:
        """`webhooks cache clear`."""
        self.cache.clear()

    def stop(self) -> None:
        for hook in list(self._endpoints):
            self._hooks.unregister(owner(hook))
        self._endpoints.clear()
        self.events.stop()
        for endpoint in self._pools:
            POOLS.release(endpoint)
        self._pools.clear()

    # -- hook functions

    def _hook_function(self, hook: str) -> Any:
        if hook in codec.SYNC_HOOKS:
            return functools.partial(self._run_chain, hook)
        sid_at = codec.SIGNATURES[hook].index("subscriber_id")
        return lambda *args: self.events.put(args[sid_at], hook, args)

    def _run_chain(self, hook: str, *args: Any) -> Any:
        """Ask the hook's endpoints in order until one answers other than next.

        Any failure to get an answer refuses: auth fails closed.
        """
        for endpoint, opts in self._endpoints.get(hook, ()):
            body = codec.encode(hook, args, opts)
            try:
                answer = self._ask(hook, endpoint, opts, body)
            except WebhookFailure as e:
                self._throttled.warning(f"{hook} {endpoint}", "webhook %s %s failed: %s", hook, endpoint,
                                        e.reason)
                return ERROR, e.reason
            if answer != NEXT:
                return answer
        return NEXT

    def _ask(self, hook: str, endpoint: str, opts: EndpointOpts, body: dict) -> Any:
        key = self.cache.key(body) if hook in codec.CACHED_HOOKS else None
        if key is not None:
            cached = self.cache.lookup(endpoint, hook, key)
            if cached is not None:
                return cached
        resp = self._post(hook, endpoint, opts, body)
        try:
            answer = codec.decode_answer(hook, resp.body, opts)
        except (ValueError, TypeError, KeyError) as e:
            raise WebhookFailure(f"invalid response: {e}") from None
        max_age = codec.max_age(resp.headers.get("cache-control"))
        accepted = answer == OK or isinstance(answer, tuple) and answer[0] == OK
        if key is not None and max_age > 0 and accepted:  # VerneMQ caches only ok-answers
            self.cache.insert(endpoint, hook, key, max_age, answer)
        return answer

    def _post_event(self, hook: str, args: tuple) -> None:
        for endpoint, opts in self._endpoints.get(hook, ()):
            try:
                self._post(hook, endpoint, opts, codec.encode(hook, args, opts))
            except WebhookFailure as e:
                self._throttled.warning(f"{hook} {endpoint}", "webhook %s %s failed: %s", hook, endpoint,
                                        e.reason)

    def _post(self, hook: str, endpoint: str, opts: EndpointOpts, body: dict) -> Any:
        pool = self._pools.get(endpoint)
        if pool is None:  # deregistered while this call was on its way
            raise WebhookFailure("not_registered")
        headers = {"Content-Type": "application/json", "vernemq-hook": hook}
        resp = pool.post(codec.dumps(body), headers, opts.response_timeout / 1000)
        if resp.status != 200:
            raise WebhookFailure(f"invalid_response_code {resp.status}")
        return resp

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self._settings)
        return self._tls
