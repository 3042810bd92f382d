"""Lua scripts on lupa (Lua 5.4), as VerneMQ's vmq_diversity_script runs them on luerl.

A script is loaded into `num_states` Lua states (its `num_states` global, else
vmq_diversity.nr_lua_states); each state serves one call at a time, so a hook waiting on a
database parks its greenlet without another greenlet entering the same state. A script
registers hooks the way VerneMQ's do: a global table `hooks = {auth_on_register = f, ...}`.
Every state sees the modules VerneMQ installs (`postgres`, `redis`, `json`, `bcrypt`, ...)
as globals and in package.loaded; `require "auth/auth_commons"` searches script_dir, then
the scripts shipped with vmqpy.

Lua tables reach Python as lists (keys 1..n) or dicts; Python lists and dicts become tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import lupa.lua54 as lupa
from gevent.queue import Queue

log = logging.getLogger(__name__)

SHIPPED_DIR = os.path.join(os.path.dirname(__file__), "lua")

# name -> {function name -> callable(runtime, *lua args)}, built per state by Modules.install
ModuleFactory = Callable[["lupa.LuaRuntime"], dict[str, dict[str, Callable[..., Any]]]]


class ScriptError(ValueError):
    """A script failed to load, or lacks what it must define."""


def to_py(value: Any) -> Any:
    """A Lua value as Python: tables become lists (keys 1..n) or dicts, recursively."""
    if lupa.lua_type(value) != "table":
        return value
    items = list(value.items())
    if items and all(k == i for i, (k, _) in enumerate(sorted(items, key=_key_order), 1)):
        return [to_py(v) for _, v in sorted(items, key=_key_order)]
    return {to_py(k): to_py(v) for k, v in items}


def _key_order(item: tuple[Any, Any]) -> tuple[int, Any]:
    key = item[0]
    return (0, key) if isinstance(key, int) and not isinstance(key, bool) else (1, str(key))


def to_lua(runtime: lupa.LuaRuntime, value: Any) -> Any:
    """A Python value for Lua: dicts and lists become tables, recursively."""
    if isinstance(value, dict | list | tuple):
        return runtime.table_from(value, recursive=True)
    return value


# A function that puts the globals back as they are now (see LuaState.forget_calls).
_RESTORE = """
local saved = {}
for k, v in pairs(_G) do saved[k] = v end
return function()
    for k in pairs(_G) do
        if saved[k] == nil then _G[k] = nil end
    end
    for k, v in pairs(saved) do _G[k] = v end
end
"""


class LuaState:
    def __init__(self, path: str, instance_id: int, search_dirs: list[str], modules: ModuleFactory) -> None:
        self.runtime = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False,
                                       register_builtins=False)
        g = self.runtime.globals()
        g["python"] = None  # scripts get the modules below, not Python itself
        package = g["package"]
        package["path"] = ";".join([*(os.path.join(d, "?.lua") for d in search_dirs), package["path"]])
        g["__SCRIPT_INSTANCE_ID__"] = instance_id
        for name, functions in modules(self.runtime).items():
            table = self.runtime.table_from(functions)
            g[name] = table
            package["loaded"][name] = table
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
            self.runtime.execute(source, name="@" + path)
        except (OSError, lupa.LuaError, lupa.LuaSyntaxError) as e:
            raise ScriptError(f"can't load script {path}: {e}") from e
        self._restore: Any = None

    def forget_calls(self) -> None:
        """From now on undo, after each call, what it did to the globals (keep_state = off).

        VerneMQ's luerl states are values, so a call without keep_state leaves nothing behind;
        here the globals a call set or changed are put back. Shallow: a change inside a table
        that existed before the call stays. Done in Lua: the values never cross into Python.
        """
        self._restore = self.runtime.execute(_RESTORE)

    def global_(self, name: str) -> Any:
        return self.runtime.globals()[name]

    def hook_names(self) -> list[str]:
        hooks = self.global_("hooks")
        if lupa.lua_type(hooks) != "table":
            return []
        return sorted(str(k) for k, v in hooks.items() if lupa.lua_type(v) == "function")

    def call(self, hook: str, args: dict[str, Any]) -> Any:
        fn = self.global_("hooks")[hook]
        try:
            return to_py(fn(to_lua(self.runtime, args)))
        finally:
            if self._restore is not None:
                self._restore()


class Script:
    """One script: its Lua states and the hooks it registered."""

    def __init__(self, path: str, nr_states: int, keep_state: bool, search_dirs: list[str],
                 modules: ModuleFactory) -> None:
        self.path = path
        first = LuaState(path, 1, search_dirs, modules)
        self.hooks = first.hook_names()
        count = first.global_("num_states")
        keep = first.global_("keep_state")
        keep = keep if isinstance(keep, bool) else keep_state
        count = int(count) if isinstance(count, int | float) and count > 0 else (1 if keep else nr_states)
        states = [first] + [LuaState(path, i, search_dirs, modules) for i in range(2, count + 1)]
        self._idle: Queue = Queue()
        for state in states:
            if not keep:
                state.forget_calls()
            self._idle.put(state)
        self.states = count
        self.keep_state = keep

    def call(self, hook: str, args: dict[str, Any]) -> Any:
        """The hook function's answer; Lua errors and Python errors raised inside propagate."""
        state = self._idle.get()
        try:
            return state.call(hook, args)
        finally:
            self._idle.put(state)
