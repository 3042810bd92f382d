"""Starts, stops and lists plugins; the function behind `vmq-admin plugin`.

A plugin is a Python module with `start(settings, ctx) -> instance` and,
optionally, `instance.stop()`. Every method of the instance named after a hook
(`hooks.KNOWN_HOOKS`) is registered, chains ordered by plugin start order. An
instance whose `hooks_never_block` is True promises that its hooks never wait
(no I/O, no sleep): while every plugin keeps that promise, the broker handles
publishes and acks in the hub, without a greenlet switch.
Built-ins live in `vmqpy.plugins`; `plugins.NAME.path = DIR` loads NAME.py or
the NAME/ package from DIR without touching sys.path.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

import gevent

from vmqpy.plugins.hooks import KNOWN_HOOKS, Hooks

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "vmqpy.plugins"
DEFAULT_ENABLED = ("vmq_passwd", "vmq_acl")  # on unless the config says off, as in VerneMQ
_EXT_PREFIX = "_vmqpy_plugin_"  # sys.modules name of a plugin loaded from a path


class PluginError(Exception):
    """A plugin could not be loaded or started."""


@dataclass
class _Plugin:
    name: str
    path: str | None
    instance: Any
    hooks: list[str]


class PluginManager:
    def __init__(self, hooks: Hooks, config: Any, ctx: object) -> None:
        self._hooks = hooks
        self._config = config
        self._ctx = ctx
        self._running: dict[str, _Plugin] = {}

    def start_enabled(self) -> None:
        """Start every enabled plugin; the first failure stops the others and raises."""
        for name, path in enabled(self._config):
            try:
                self._start(name, path, self._config.plugin_settings(name))
            except PluginError:
                self.stop_all()
                raise

    def enable(self, name: str, path: str | None = None,
               settings: dict[str, Any] | None = None) -> str | None:
        """Start a plugin at runtime; returns None on success, else the error."""
        if name in self._running:
            return f"plugin {name} is already enabled"
        if settings is None:
            settings = self._config.plugin_settings(name)
        try:
            self._start(name, path, settings)
        except PluginError as e:
            return str(e)
        return None

    def disable(self, name: str) -> str | None:
        """Stop a running plugin; returns None on success, else the error."""
        plugin = self._running.pop(name, None)
        if plugin is None:
            return f"plugin {name} is not enabled"
        self._stop(plugin)
        return None

    def instance(self, name: str) -> Any:
        """The object a running plugin's start() returned, None if it is not running."""
        plugin = self._running.get(name)
        return None if plugin is None else plugin.instance

    def show(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "hooks": list(p.hooks), "path": p.path, "builtin": p.path is None}
                for p in self._running.values()]

    def stop_all(self) -> None:
        """Stop every plugin, the last started first."""
        for name in reversed(list(self._running)):
            self._stop(self._running.pop(name))

    def _start(self, name: str, path: str | None, settings: dict[str, Any]) -> None:
        try:
            module = _load_module(name, path)
            if not callable(getattr(module, "start", None)):
                raise AttributeError(f"module {module.__name__} has no start(settings, ctx)")
            instance = module.start(settings, self._ctx)
        except Exception as e:
            log.error("plugin %s failed to start: %s", name, e)
            log.debug("plugin %s failed to start", name, exc_info=True)
            if path is not None:
                _forget(name)
            raise PluginError(f"plugin {name} failed to start: {e}") from e
        hooks = sorted(h for h in KNOWN_HOOKS if callable(getattr(instance, h, None)))
        never_blocks = getattr(instance, "hooks_never_block", False) is True
        for hook in hooks:
            self._hooks.register(name, hook, getattr(instance, hook), never_blocks)
        self._running[name] = _Plugin(name, path, instance, hooks)
        log.info("plugin %s started (%s), hooks: %s", name, path or "built-in", ", ".join(hooks) or "none")

    def _stop(self, plugin: _Plugin) -> None:
        self._hooks.unregister(plugin.name)  # no new calls into a stopping plugin
        stop = getattr(plugin.instance, "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:
                log.exception("plugin %s raised while stopping", plugin.name)
        if plugin.path is not None:
            _forget(plugin.name)  # so enabling it again loads the code afresh
        log.info("plugin %s stopped", plugin.name)


def enabled(config: Any) -> Iterator[tuple[str, str | None]]:
    """(name, path or None for a built-in) of every plugin the config turns on, in start order."""
    specs: dict[str, Any] = dict.fromkeys(DEFAULT_ENABLED)
    specs.update(config.plugins)
    # those with a plugins.NAME.priority first, lowest first (as VerneMQ sorts them), then the others
    ranked = sorted(specs.items(), key=lambda item: (getattr(item[1], "priority", None) is None,
                                                     getattr(item[1], "priority", None) or 0))
    for name, spec in ranked:
        if spec is None:
            yield name, None
        elif spec.enabled:
            yield name, spec.path


def preflight(config: Any) -> list[tuple[str, str]]:
    """(key, why) for each enabled plugin that cannot start: its module does not load, or its own
    `check(settings, config)` finds a problem, naming the key (vmq_acl: no ACL file; vmq_bridge: a
    bridge without topics...). Run before a node opens a port, and by
    `vernemq chkconfig`, so both say the same."""
    problems = []
    for name, path in enabled(config):
        try:
            module = _load_module(name, path)
        except Exception as e:
            problems.append((f"plugins.{name}", f"the plugin cannot be loaded: {e}"))
            continue
        finally:
            if path is not None:
                _forget(name)
        check = getattr(module, "check", None)
        problem = check(config.plugin_settings(name), config) if callable(check) else None
        if problem is not None:
            problems.append(problem)
    return problems


def _load_module(name: str, path: str | None) -> ModuleType:
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a valid plugin (module) name")
    if path is None:
        try:
            return importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{BUILTIN_PACKAGE}.{name}":
                raise  # the plugin is there, something it imports is not
            raise ModuleNotFoundError(f"no built-in plugin {name} (plugins.{name}.path = DIR loads one "
                                      "from DIR)") from None
    package_dir = os.path.join(path, name)
    if os.path.isdir(package_dir):
        file, search = os.path.join(package_dir, "__init__.py"), [package_dir]
    else:
        file, search = package_dir + ".py", None
    if not os.path.isfile(file):
        raise FileNotFoundError(f"neither {name}.py nor a {name}/ package in {path}")
    modname = _EXT_PREFIX + name
    spec = importlib.util.spec_from_file_location(modname, file, submodule_search_locations=search)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # relative imports inside a package look it up here
    spec.loader.exec_module(module)
    return module


def _forget(name: str) -> None:
    modname = _EXT_PREFIX + name
    for key in [k for k in sys.modules if k == modname or k.startswith(modname + ".")]:
        del sys.modules[key]


T = TypeVar("T")


class FileReloader(Generic[T]):
    """Keeps a plugin's table in step with its file (vmq_passwd, vmq_acl).

    `start()` loads the file once: a missing file means an empty table (as in
    VerneMQ; vmq_acl refuses to start before, see its `check`), a bad one raises
    so the plugin refuses to start. Then, every
    `interval` seconds (0: never), the file is reloaded if it changed; a file
    that vanished or fails to load leaves the current table in place.
    """

    def __init__(self, what: str, path: str, interval: float,
                 load: Callable[[str], T], apply: Callable[[T], None]) -> None:
        self.what = what
        self.path = path
        self.interval = interval
        self._load = load
        self._apply = apply
        self._seen: tuple[int, int, int] | None = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._seen = _signature(self.path)
        if self._seen is None:
            log.warning("%s: %s does not exist; no entries until it does", self.what, self.path)
        else:
            self._apply(self._load(self.path))
        if self.interval > 0:
            self._greenlet = gevent.spawn(self._run)

    def check(self) -> bool:
        """Reload if the file changed since last seen; True if a new table was applied."""
        sig = _signature(self.path)
        if sig is None or sig == self._seen:
            return False
        self._seen = sig  # a bad file is reported once, not every interval
        try:
            table = self._load(self.path)
        except (OSError, ValueError) as e:
            log.error("%s: keeping the previous table, cannot reload %s: %s", self.what, self.path, e)
            return False
        self._apply(table)
        log.info("%s: reloaded %s", self.what, self.path)
        return True

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval)
            try:
                self.check()
            except Exception:
                log.exception("%s: reload of %s failed", self.what, self.path)


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
