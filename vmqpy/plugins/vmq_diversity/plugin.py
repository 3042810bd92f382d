"""vmq_diversity's hooks: the auth cache first, then the scripts in load order (VerneMQ's
vmq_diversity_plugin.erl).

A script answers a hook with true (ok), a table (ok with modifiers), false (refused: bad
credentials for auth_on_register, not authorized otherwise) or nil (next script). A script
that raises is skipped for the auth hooks, as VerneMQ does; when every script was skipped
because a database was unavailable, auth_on_register answers `server_unavailable`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from vmqpy.plugins.hooks import ERROR, NEXT, OK
from vmqpy.plugins.vmq_diversity.cache import AuthCache
from vmqpy.plugins.vmq_diversity.pools import DatabaseUnavailable
from vmqpy.plugins.vmq_diversity.runtime import Script

log = logging.getLogger(__name__)

AUTH_HOOKS = frozenset({"auth_on_register", "auth_on_register_m5", "auth_on_publish", "auth_on_publish_m5",
                        "auth_on_subscribe", "auth_on_subscribe_m5"})
# Event hooks a script may register; the plugin offers them only then (no cost otherwise).
EVENT_ARGS = {
    "on_register": ("peer", "subscriber_id", "username"),
    "on_register_m5": ("peer", "subscriber_id", "username", "properties"),
    "on_publish": ("username", "subscriber_id", "qos", "topic", "payload", "retain"),
    "on_publish_m5": ("username", "subscriber_id", "qos", "topic", "payload", "retain", "properties"),
    "on_subscribe": ("username", "subscriber_id", "topics"),
    "on_subscribe_m5": ("username", "subscriber_id", "topics", "properties"),
    "on_offline_message": ("subscriber_id", "qos", "topic", "payload", "retain"),
    "on_client_wakeup": ("subscriber_id",),
}
REFUSED = {"auth_on_register": "invalid_credentials", "auth_on_register_m5": "invalid_credentials"}


def _lua_args(names: tuple[str, ...], values: tuple) -> dict[str, Any]:
    """Hook arguments as the table VerneMQ passes to Lua (addr/port, mountpoint/client_id, ...)."""
    out: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if name == "peer":
            out["addr"], out["port"] = value[0], value[1]
        elif name == "subscriber_id":
            out["mountpoint"], out["client_id"] = value
        elif name == "topics":
            out["topics"] = [[t, q] for t, q in value]
        else:
            out[name] = value
    return out


def _text(password: bytes | None) -> bool:
    """Whether a password can reach Lua and come back: Lua strings return to Python as UTF-8 text."""
    if password is None:
        return True
    try:
        password.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _publish_modifiers(mods: dict[str, Any]) -> dict[str, Any]:
    out = dict(mods)
    if isinstance(out.get("payload"), str):
        out["payload"] = out["payload"].encode()
    if "qos" in out:
        out["qos"] = int(out["qos"])
    return out


class DiversityPlugin:
    def __init__(self, scripts: list[Script], cache: AuthCache, closers: list[Any],
                 load: Callable[[str], Script]) -> None:
        self.scripts = scripts
        self.cache = cache
        self._closers = closers
        self._load = load
        registered = {h for s in scripts for h in s.hooks}
        self._events = (registered & EVENT_ARGS.keys()) - {"on_register", "on_register_m5"}
        for hook in self._events:
            setattr(self, hook, functools.partial(self._all, hook, EVENT_ARGS[hook]))

    # -- vmq-admin script ...

    def show(self) -> list[dict[str, Any]]:
        """Rows of `script show`."""
        return [{"script": s.path, "states": s.states, "keep_state": s.keep_state, "hooks": ",".join(s.hooks)}
                for s in self.scripts]

    def load_script(self, path: str) -> None:
        """`script load path=P`: load and add a script (raises ScriptError, ValueError)."""
        if any(s.path == path for s in self.scripts):
            raise ValueError(f"{path} is already loaded")
        self.scripts = [*self.scripts, self._checked(self._load(path))]

    def reload_script(self, path: str) -> None:
        """`script reload path=P`: the file loaded afresh; the old states serve until it is."""
        index = self._index(path)
        fresh = self._checked(self._load(path))
        self.scripts = [*self.scripts[:index], fresh, *self.scripts[index + 1:]]

    def unload_script(self, path: str) -> None:
        index = self._index(path)
        self.scripts = [*self.scripts[:index], *self.scripts[index + 1:]]

    def _index(self, path: str) -> int:
        for i, script in enumerate(self.scripts):
            if script.path == path:
                return i
        raise ValueError(f"{path} is not loaded")

    def _checked(self, script: Script) -> Script:
        # The broker learnt at start which event hooks this plugin answers.
        missing = set(script.hooks) & EVENT_ARGS.keys() - self._events - {"on_register", "on_register_m5"}
        if missing:
            raise ValueError(f"{script.path} registers {', '.join(sorted(missing))}, which no script did "
                             "at start: disable and enable vmq_diversity to add hooks")
        return script

    # -- the chain over the scripts

    def _till_ok(self, hook: str, args: dict[str, Any]) -> Any:
        unavailable = False
        for script in self.scripts:
            if hook not in script.hooks:
                continue
            try:
                answer = script.call(hook, args)
            except DatabaseUnavailable:
                unavailable = True  # logged once per outage by the pool
                continue
            except Exception as e:
                log.error("vmq_diversity: can't call function %s in %s due to %s", hook, script.path, e)
                if hook in AUTH_HOOKS:
                    continue
                return ERROR, "lua_script_error"
            if answer is True:
                return OK
            if answer is False:
                return ERROR, REFUSED.get(hook, "not_authorized")
            if isinstance(answer, dict | list) and answer:
                return OK, answer
        if unavailable and hook in REFUSED:
            return ERROR, "server_unavailable"
        return NEXT

    def _all(self, hook: str, names: tuple[str, ...], *values: Any) -> None:
        args = _lua_args(names, values)
        for script in self.scripts:
            if hook in script.hooks:
                try:
                    script.call(hook, args)
                except Exception as e:
                    log.error("vmq_diversity: can't call function %s in %s due to %s", hook, script.path, e)

    # -- hooks

    def auth_on_register(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                         password: bytes | None, clean_session: bool) -> Any:
        if not _text(password):
            return NEXT
        return self._till_ok("auth_on_register", _lua_args(
            ("peer", "subscriber_id", "username", "password", "clean_session"),
            (peer, subscriber_id, username, password, clean_session)))

    def auth_on_register_m5(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                            password: bytes | None, clean_start: bool, properties: dict) -> Any:
        if not _text(password):
            return NEXT
        return self._till_ok("auth_on_register_m5", _lua_args(
            ("peer", "subscriber_id", "username", "password", "clean_start", "properties"),
            (peer, subscriber_id, username, password, clean_start, properties)))

    def auth_on_publish(self, username: str | None, subscriber_id: tuple[str, str], qos: int, topic: str,
                        payload: bytes, is_retain: bool) -> Any:
        return self._publish("auth_on_publish", username, subscriber_id, qos, topic, payload, is_retain, None)

    def auth_on_publish_m5(self, username: str | None, subscriber_id: tuple[str, str], qos: int, topic: str,
                           payload: bytes, is_retain: bool, properties: dict) -> Any:
        return self._publish("auth_on_publish_m5", username, subscriber_id, qos, topic, payload, is_retain,
                             properties)

    def _publish(self, hook: str, username: str | None, sid: tuple[str, str], qos: int, topic: str,
                 payload: bytes, retain: bool, properties: dict | None) -> Any:
        cached = self.cache.match_publish(sid[0], sid[1], qos, topic, payload, retain)
        if cached is True:
            return OK
        if cached is False:
            return ERROR, "not_authorized"
        if cached is not None:
            return OK, _publish_modifiers(cached)
        names = ("username", "subscriber_id", "qos", "topic", "payload", "retain")
        values: tuple = (username, sid, qos, topic, payload, retain)
        if properties is not None:
            names, values = (*names, "properties"), (*values, properties)
        answer = self._till_ok(hook, _lua_args(names, values))
        if isinstance(answer, tuple) and answer[0] == OK:
            return OK, _publish_modifiers(answer[1]) if isinstance(answer[1], dict) else {}
        return answer

    def auth_on_subscribe(self, username: str | None, subscriber_id: tuple[str, str],
                          topics: list[tuple[str, int]]) -> Any:
        return self._subscribe("auth_on_subscribe", username, subscriber_id, topics, None)

    def auth_on_subscribe_m5(self, username: str | None, subscriber_id: tuple[str, str],
                             topics: list[tuple[str, int]], properties: dict) -> Any:
        return self._subscribe("auth_on_subscribe_m5", username, subscriber_id, topics, properties)

    def _subscribe(self, hook: str, username: str | None, sid: tuple[str, str], topics: list[tuple[str, int]],
                   properties: dict | None) -> Any:
        answers = [self.cache.match_subscribe(sid[0], sid[1], f, q) for f, q in topics]
        if any(a is False for a in answers):
            return ERROR, "not_authorized"
        if all(a is not None for a in answers):
            if all(a is True for a in answers):
                return OK
            return OK, {"topics": [a if isinstance(a, tuple) else t for a, t in zip(answers, topics, strict=True)]}
        names = ("username", "subscriber_id", "topics")
        values: tuple = (username, sid, topics)
        if properties is not None:
            names, values = (*names, "properties"), (*values, properties)
        answer = self._till_ok(hook, _lua_args(names, values))
        if isinstance(answer, tuple) and answer[0] == OK:
            mods = answer[1]
            rewritten = [(str(t), int(q)) for t, q in mods] if isinstance(mods, list) else None
            return (OK, {"topics": rewritten}) if rewritten else OK
        return answer

    def on_register(self, peer: Any, subscriber_id: tuple[str, str], username: str | None) -> None:
        self.cache.activate(*subscriber_id)
        self._all("on_register", EVENT_ARGS["on_register"], peer, subscriber_id, username)

    def on_register_m5(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                       properties: dict) -> None:
        self.cache.activate(*subscriber_id)
        self._all("on_register_m5", EVENT_ARGS["on_register_m5"], peer, subscriber_id, username, properties)

    def _gone(self, hook: str, subscriber_id: tuple[str, str]) -> None:
        self.cache.clear(*subscriber_id)
        self._all(hook, ("subscriber_id",), subscriber_id)

    def on_client_offline(self, subscriber_id: tuple[str, str]) -> None:
        self._gone("on_client_offline", subscriber_id)

    def on_client_gone(self, subscriber_id: tuple[str, str]) -> None:
        self._gone("on_client_gone", subscriber_id)

    def on_session_expired(self, subscriber_id: tuple[str, str]) -> None:
        self._gone("on_session_expired", subscriber_id)

    def stop(self) -> None:
        for closer in self._closers:
            closer.close()
