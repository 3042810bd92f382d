"""The hook registry and VerneMQ's three chain kinds.

A hook function returns one of:
  "ok"                     accept
  ("ok", {modifiers})      accept and rewrite (topic, payload, qos, topics, ...)
  "next"                   no opinion: ask the next plugin
  ("error", reason)        refuse
A hook that raises is logged and counts as "next": it never crashes a session
and never grants access. Any other answer stops the chain as an error, as
VerneMQ's vmq_plugin does, so a buggy plugin refuses rather than grants.
Callers on the hot path test `hooks.active(name)` or `name in hooks.names` (a
set lookup) before building arguments, so an unimplemented hook costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

OK = "ok"
NEXT = "next"
ERROR = "error"

# Every hook VerneMQ defines, by the chain kind VerneMQ calls it with.
ALL_TILL_OK_HOOKS = (
    "auth_on_register", "auth_on_register_m5",
    "auth_on_publish", "auth_on_publish_m5",
    "auth_on_subscribe", "auth_on_subscribe_m5",
    "on_auth_m5",
    "on_deliver", "on_deliver_m5",
    "on_unsubscribe", "on_unsubscribe_m5",
)
ALL_HOOKS = (
    "on_register", "on_register_m5",
    "on_publish", "on_publish_m5",
    "on_subscribe", "on_subscribe_m5",
    "on_topic_unsubscribed",
    "on_delivery_complete",
    "on_offline_message", "on_client_wakeup", "on_client_offline",
    "on_client_gone", "on_session_expired", "on_message_drop",
    "on_config_change",
)
ONLY_HOOKS = (
    "msg_store_write", "msg_store_delete", "msg_store_find", "msg_store_read",
)
KNOWN_HOOKS = frozenset(ALL_TILL_OK_HOOKS + ALL_HOOKS + ONLY_HOOKS)


class Hooks:
    """Ordered hook chains; the order of a chain is the order plugins started."""

    def __init__(self) -> None:
        self._chains: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
        # Owners whose hooks may block (wait on I/O: webhooks...); see may_block.
        self._blocking: set[str] = set()
        # True while any registered hook may block. When False the broker runs the publish path
        # (auth_on_publish, on_deliver, ...) of a parked connection in the hub, without a greenlet.
        self.may_block = False
        # Names with at least one hook: the hot path tests `name in hooks.names` (no call). The set is
        # changed in place, never replaced, so holding it is safe.
        self.names: set[str] = set()

    def register(self, owner: str, name: str, fn: Callable[..., Any], never_blocks: bool = False) -> None:
        """Add fn to the chain of hook `name`; `never_blocks`: fn never waits (no I/O, no sleep,
        no gevent switch), so the broker may call it from the hub (built-in file plugins)."""
        if name not in KNOWN_HOOKS:
            raise ValueError(f"unknown hook {name!r}")
        if not never_blocks:
            self._blocking.add(owner)
            self.may_block = True
        # Copy on write: a chain being run by a greenlet that yields inside a
        # hook keeps iterating the list it started with.
        self._chains[name] = [*self._chains.get(name, ()), (owner, fn)]
        self.names.add(name)

    def unregister(self, owner: str) -> None:
        """Remove every hook function that `owner` registered."""
        for name in list(self._chains):
            chain = [(o, f) for o, f in self._chains[name] if o != owner]
            if chain:
                self._chains[name] = chain
            else:
                del self._chains[name]
                self.names.discard(name)
        self._blocking.discard(owner)
        self.may_block = bool(self._blocking)

    def active(self, name: str) -> bool:
        return name in self.names

    def owners(self, name: str) -> list[str]:
        return [owner for owner, _ in self._chains.get(name, ())]

    def all_till_ok(self, name: str, *args: Any, plugins: tuple[str, ...] = ()) -> tuple[str, Any]:
        """Run the chain until a hook says ok or error; `plugins`: only these plugins' hooks, in
        that order (a listener's auth_plugins / authz_plugins).

        Returns ("ok", modifiers_dict), ("error", reason) or ("next", None)
        when no hook answered (VerneMQ's plugin_chain_exhausted: the caller
        refuses auth).
        """
        chain = self._chains.get(name, ())
        if plugins:
            chain = [(owner, fn) for plugin in plugins for owner, fn in chain if owner == plugin]
        for owner, fn in chain:
            try:
                res = fn(*args)
            except Exception:
                log.exception("hook %s of plugin %s raised; treated as next", name, owner)
                continue
            if res == OK:
                return OK, {}
            if res == NEXT or res is None:
                continue
            if isinstance(res, tuple) and len(res) == 2:
                kind, value = res
                if kind == OK and (value is None or isinstance(value, dict)):
                    return OK, dict(value or {})
                if kind == ERROR:
                    return ERROR, value
            log.error("hook %s of plugin %s returned %r; treated as error", name, owner, res)
            return ERROR, res
        return NEXT, None

    def all(self, name: str, *args: Any) -> None:
        """Run every hook of the chain; results are ignored, errors logged."""
        for owner, fn in self._chains.get(name, ()):
            try:
                fn(*args)
            except Exception:
                log.exception("hook %s of plugin %s raised", name, owner)

    def only(self, name: str, *args: Any) -> Any:
        """Run the first hook of the chain and return its result."""
        chain = self._chains.get(name)
        if not chain:
            return NEXT
        return chain[0][1](*args)
