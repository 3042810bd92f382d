"""vernemq.conf: read with configobj, checked against the one schema in config_schema.

A value is text until it is read: `$(key)` is replaced by that key's effective value (cuttlefish's
substitution), then the key's type parses it and relative paths become absolute against the base
directory. Unknown keys, bad values and duplicates raise ConfigError naming file, line, key and reason.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Any

import configobj

from vmqpy.config_schema import KEYS, LISTENER_KINDS, LISTENER_OPTIONS, Key, fill, lookup

_SUBSTITUTION = re.compile(r"\$\(([\w.]+)\)")
_KEY_LINE = re.compile(r"\s*([^#=\s][^=]*?)\s*=")
# first segments of declared keys: a plugin with one of these names has its settings in the schema
_DECLARED_PREFIXES = frozenset(key.name.split(".")[0] for key in KEYS)
_ADDRESS_KEYS = {f"listener.{kind}.$name": kind for kind in LISTENER_KINDS}


class ConfigError(Exception):
    """A config problem; str() is `FILE:LINE: KEY: WHY` (just `KEY: WHY` for runtime changes)."""

    def __init__(self, file: str | None, line: int | None, key: str, why: str) -> None:
        super().__init__(file, line, key, why)
        self.file, self.line, self.key, self.why = file, line, key, why

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file is not None and self.line is not None else (
            f"{self.file}: " if self.file is not None else "")
        return f"{where}{self.key}: {self.why}"


@dataclass
class Listener:
    kind: str  # tcp, ssl, ws, wss, http, vmq
    name: str
    host: str
    port: int
    opts: dict[str, Any]  # effective listener options (see config_schema.LISTENER_OPTIONS)


@dataclass(frozen=True)
class PluginSpec:
    enabled: bool
    path: str | None
    priority: int | None = None  # plugins.NAME.priority: lower starts (and hooks) first


def load(path: str) -> Config:
    """Read and check the config file at `path`; only this file is consulted (no environment)."""
    path = os.path.abspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(path, 0, "config file", f"cannot read it: {exc.strerror}") from None
    return Config(text, path, root_dir(path), etc_dir=os.path.dirname(path))


def root_dir(path: str) -> str:
    """What relative paths in the file at `path` are relative to.

    A checkout or release keeps its config in <root>/etc/, and VerneMQ resolves
    ./data against the release root, so: the parent of an `etc` directory, else
    the file's own directory. Never the caller's working directory, so
    `vernemq ping` finds the same admin socket from anywhere.
    """
    etc = os.path.dirname(path)
    return os.path.dirname(etc) if os.path.basename(etc) == "etc" else etc


def parse_text(text: str, filename: str = "<string>", base_dir: str | None = None) -> Config:
    """Like load() for text in hand; platform_etc_dir defaults to base_dir (default: the cwd)."""
    base_dir = os.path.abspath(base_dir or os.getcwd())
    return Config(text, filename, base_dir, etc_dir=base_dir)


class Config:
    """A checked configuration: typed values with defaults applied, listeners, plugins, runtime changes."""

    def __init__(self, text: str, path: str, base_dir: str, etc_dir: str) -> None:
        self.path = path
        self._base_dir = base_dir
        self._etc_dir = etc_dir
        self._lines: dict[str, int] = {}
        self._raw: dict[str, str] = {}  # set keys (schema instances) -> text, in file order
        self._external: dict[str, str] = {}  # settings of plugins the schema does not know
        self._parsed: dict[str, Any] = {}  # cache: key -> value of its text or default
        self.changed: dict[str, str] = {}  # keys changed on the running node (vmq-admin set) -> text
        self._resolving: set[str] = set()
        self._orphans: dict[str, str] = {}  # options of undefined listeners -> why they are ignored
        self._read(text)
        self._file = dict(self._raw)  # what the file says, for `config reset`
        for name in [*self._raw, *(key.name for key in KEYS if not key.is_pattern)]:
            self.get(name)  # parse everything now: a bad value must stop the node at start
        self._check_required()

    # -- reading ------------------------------------------------------------------------------------------

    def _read(self, text: str) -> None:
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            match = _KEY_LINE.match(line)
            if match:
                self._lines.setdefault(match.group(1), number)
        try:
            parsed = configobj.ConfigObj(lines, list_values=False, interpolation=False, raise_errors=True)
        except configobj.ConfigObjError as exc:
            key = exc.line.split("=")[0].strip() or exc.line
            why = "expected `key = value` (or a # comment)"
            if isinstance(exc, configobj.DuplicateError):
                why = f"duplicate key, first set at line {self._lines[key]}"
            raise ConfigError(self.path, exc.line_number, key, why) from None
        if parsed.sections:
            line = next(n for n, text in enumerate(lines, 1) if text.lstrip().startswith("["))
            why = "sections are not part of vernemq.conf"
            raise ConfigError(self.path, line, f"[{parsed.sections[0]}]", why)
        plugins = {name.split(".")[1] for name in parsed if name.startswith("plugins.")}
        external = plugins - _DECLARED_PREFIXES
        for name, value in parsed.items():
            if len(value) > 1 and value[0] == value[-1] == '"':
                value = value[1:-1]  # configobj keeps the quotes that protect a `#` (comment start)
            if lookup(name):
                self._raw[name] = value
            elif "." in name and name.split(".")[0] in external:
                self._external[name] = value
            else:
                raise ConfigError(self.path, self._lines.get(name), name, _unknown(name))

    def _check_required(self) -> None:
        for name in self._raw:
            key, variables = lookup(name)
            for required in (fill(template, variables) for template in key.requires):
                if required in self._raw:
                    continue
                if _ADDRESS_KEYS.get(lookup(required)[0].name):
                    # an option of a listener that is not defined: VerneMQ ignores it, so do we (logged)
                    self._orphans[name] = f"{required} is not set, so there is no such listener"
                    continue
                raise ConfigError(self.path, self._lines.get(name), name, f"{required} is not set")

    # -- values -------------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        """The typed, effective value of `name`; KeyError if undeclared or neither set nor defaulted."""
        if name in self._external:
            return self._external[name]
        found = lookup(name)
        if not found:
            raise KeyError(name)
        key = found[0]
        if name not in self._raw and key.parent:
            return self[key.parent]
        if name not in self._parsed:
            text = self._raw.get(name, self._default_text(key))
            if text is None:
                raise KeyError(name)
            self._parsed[name] = self._parse(name, key, text, self._lines.get(name))
        return self._parsed[name]

    def line_of(self, name: str) -> int | None:
        """The line `name` is set on, None where it has its default."""
        return self._lines.get(name)

    def error(self, name: str, why: str) -> ConfigError:
        """A ConfigError pointing at the line that sets `name` (for checks that span several keys)."""
        line = self.line_of(name)
        return ConfigError(self.path if line else None, line, name, why)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def _default_text(self, key: Key) -> str | None:
        # the only default the schema cannot state: it depends on where the config file is
        return self._etc_dir if key.name == "platform_etc_dir" else key.default

    def _parse(self, name: str, key: Key, text: str, line: int | None) -> Any:
        if name in self._resolving:
            raise ConfigError(self.path, line, name, "circular $(...) reference")
        self._resolving.add(name)
        try:
            return key.type.parse(_SUBSTITUTION.sub(lambda m: self._substitute(m, name, line), text),
                                  self._base_dir)
        except ValueError as exc:  # no line: not from the file (a default or vmq-admin set)
            raise ConfigError(self.path if line else None, line, name, str(exc)) from None
        finally:
            self._resolving.discard(name)

    def _substitute(self, match: re.Match[str], name: str, line: int | None) -> str:
        var = match.group(1)
        found = lookup(var)
        if not found or found[0].is_pattern:
            raise ConfigError(self.path, line, name, f"$({var}): no such key")
        return found[0].type.fmt(self[var])

    def set(self, key: str, value: str) -> None:
        """Change a runtime-settable key on the running node (vmq-admin set)."""
        found = lookup(key)
        if not found:
            raise ConfigError(None, None, key, _unknown(key))
        if not found[0].runtime:
            raise ConfigError(None, None, key, "cannot be changed at runtime: edit vernemq.conf and restart")
        self._parsed[key] = self._parse(key, found[0], value, None)
        self._raw[key] = value
        self.changed[key] = value

    def reset(self, key: str) -> None:
        """Undo `set` for `key`: back to the file's value, or the default (vmq-admin config reset)."""
        self.changed.pop(key, None)
        self._parsed.pop(key, None)
        if key in self._file:
            self._raw[key] = self._file[key]
        else:
            self._raw.pop(key, None)

    def settable(self, key: str) -> bool:
        """Whether `set` may change `key` on the running node."""
        found = lookup(key)
        return bool(found and found[0].runtime)

    def explicit(self) -> list[tuple[str, str]]:
        """The keys the file sets, with their text as written."""
        return list(self._file.items())

    def override(self, values: dict[str, Any]) -> None:
        """Replace already-typed values of declared keys in this process only.

        For a supervisor handing each worker process its own directories and
        sockets; unlike `set`, no runtime check and no parsing from text.
        """
        for key in values:
            if not lookup(key):
                raise ConfigError(None, None, key, _unknown(key))
        self._parsed.update(values)

    # -- views --------------------------------------------------------------------------------------------

    @property
    def listeners(self) -> list[Listener]:
        """The configured listeners in file order, each with its effective options."""
        listeners = []
        for name in self._raw:
            key, variables = lookup(name)
            kind = _ADDRESS_KEYS.get(key.name)
            if kind:
                host, port = self[name]
                opts = {opt.name: self.get(f"{name}.{opt.name}") for opt in LISTENER_OPTIONS if kind in opt.kinds}
                listeners.append(Listener(kind, variables["name"], host, port, opts))
        return listeners

    @property
    def plugins(self) -> dict[str, PluginSpec]:
        """Every plugin named in the schema or in a plugins.NAME[.path] line."""
        names = {name.split(".")[1] for name in [*self._raw, *(k.name for k in KEYS)]
                 if name.startswith("plugins.") and "$" not in name}
        return {name: PluginSpec(bool(self.get(f"plugins.{name}", False)), self.get(f"plugins.{name}.path"),
                                 self.get(f"plugins.{name}.priority"))
                for name in sorted(names)}

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        """Every `PLUGIN.setting` value, declared defaults included, keyed by `setting` (no prefix)."""
        prefix = f"{plugin}."
        names = [k.name for k in KEYS if not k.is_pattern and k.name.startswith(prefix)]
        names += [name for name in [*self._raw, *self._external] if name.startswith(prefix)]
        return {name[len(prefix):]: self[name] for name in dict.fromkeys(names) if self.get(name) is not None}

    def effective(self) -> list[tuple[str, str]]:
        """Every key that has a value, with that value as vernemq.conf text, sorted by key."""
        names = {*self._raw, *(key.name for key in KEYS if not key.is_pattern)}
        rows = [(name, lookup(name)[0].type.fmt(self[name])) for name in names if self.get(name) is not None]
        return sorted(rows + list(self._external.items()))

    def ignored(self) -> list[tuple[str, str]]:
        """(key, why) of every key set in the file that is accepted from VerneMQ but has no effect here."""
        return [(name, self._orphans.get(name) or f"no effect in vmqpy: {key.ignored}")
                for name, key in ((n, lookup(n)[0]) for n in self._raw) if key.ignored or name in self._orphans]

    def schema_doc(self) -> list[tuple[str, str, str, bool]]:
        """(key, default, doc, runtime-settable) for every schema key; `$var` segments read `<var>`."""
        rows = []
        for key in KEYS:
            default = self._default_text(key)
            if key.parent:
                default = f"as {key.parent}"
            rows.append((re.sub(r"\$(\w+)", r"<\1>", key.name), default or "", key.doc, key.runtime))
        return rows


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, [key.name for key in KEYS if not key.is_pattern], n=1)
    return "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
