"""Value types of vernemq.conf: each turns the text of a value into a Python value and back.

`parse` raises ValueError with the reason an operator reads (it becomes the WHY of a ConfigError).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any


class Type:
    """Base of all value types; `describe` is what the docs say a value may be."""

    describe = "text"

    def parse(self, text: str, base_dir: str) -> Any:
        return text

    def fmt(self, value: Any) -> str:
        return str(value)


class Str(Type):
    pass


class Flag(Type):
    describe = "on or off"
    _WORDS = {"on": True, "true": True, "off": False, "false": False}

    def parse(self, text: str, base_dir: str) -> bool:
        try:
            return self._WORDS[text.lower()]
        except KeyError:
            raise ValueError(f"expected on or off, got {text!r}") from None

    def fmt(self, value: bool) -> str:
        return "on" if value else "off"


@dataclass(frozen=True)
class Int(Type):
    minimum: int | None = 0
    maximum: int | None = None
    infinity: bool = False  # accept the word 'infinity' (math.inf), as VerneMQ's max_connections does
    cores: bool = False  # accept the word 'auto': the number of CPU cores this process may run on

    @property
    def describe(self) -> str:
        bounds = f"an integer >= {self.minimum}" if self.minimum is not None else "an integer"
        if self.maximum is not None:
            bounds += f" and <= {self.maximum}"
        return bounds + (" or infinity" if self.infinity else "") + (" or auto (one per CPU core)"
                                                                      if self.cores else "")

    def parse(self, text: str, base_dir: str) -> int | float:
        if self.infinity and text == "infinity":
            return math.inf
        if self.cores and text == "auto":
            return len(os.sched_getaffinity(0))
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected {self.describe}, got {text!r}") from None
        too_small = self.minimum is not None and value < self.minimum
        if too_small or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"expected {self.describe}, got {value}")
        return value

    def fmt(self, value: int | float) -> str:
        return "infinity" if value == math.inf else str(value)


@dataclass(frozen=True)
class Enum(Type):
    choices: tuple[str, ...]

    @property
    def describe(self) -> str:
        return " | ".join(self.choices)

    def parse(self, text: str, base_dir: str) -> str:
        if text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
        return text


# VerneMQ's units (vmq_schema:string_to_secs): 'm' is a month of 4 weeks, not a minute.
_SECONDS = {"s": 1, "h": 3600, "d": 86400, "w": 7 * 86400, "m": 28 * 86400, "y": 12 * 28 * 86400}


@dataclass(frozen=True)
class Duration(Type):
    """Seconds: a bare integer, or an integer with a unit s, h, d, w, m (4 weeks), y; plus named words."""

    words: tuple[tuple[str, int], ...] = ()  # e.g. (("never", 0),)

    @property
    def describe(self) -> str:
        names = "".join(f" or {word}" for word, _ in self.words)
        return "seconds, or an integer followed by s, h, d, w, m (month) or y" + names

    def parse(self, text: str, base_dir: str) -> int:
        named = dict(self.words)
        if text in named:
            return named[text]
        match = re.fullmatch(r"(\d+)([shdwmy]?)", text)
        if not match:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        return int(match.group(1)) * _SECONDS[match.group(2) or "s"]

    def fmt(self, value: int) -> str:
        for word, number in self.words:
            if value == number:
                return word
        return f"{value}s"


_BYTE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


@dataclass(frozen=True)
class ByteSize(Type):
    infinity: bool = False  # accept the word 'infinity' (math.inf), as VerneMQ's log rotation sizes do

    @property
    def describe(self) -> str:
        return "bytes: an integer, optionally followed by KB, MB or GB" + (" or infinity" if self.infinity else "")

    def parse(self, text: str, base_dir: str) -> int | float:
        if self.infinity and text == "infinity":
            return math.inf
        match = re.fullmatch(r"(\d+)\s*([KMG]?B?)", text.upper())
        if not match or match.group(2) not in _BYTE_UNITS:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        return int(match.group(1)) * _BYTE_UNITS[match.group(2)]

    def fmt(self, value: int | float) -> str:
        return "infinity" if value == math.inf else str(value)


@dataclass(frozen=True)
class IntList(Type):
    allowed: tuple[int, ...]

    @property
    def describe(self) -> str:
        return "comma separated list of " + ", ".join(map(str, self.allowed))

    def parse(self, text: str, base_dir: str) -> list[int]:
        try:
            values = [int(item) for item in text.split(",")]
        except ValueError:
            raise ValueError(f"expected a {self.describe}, got {text!r}") from None
        wrong = [v for v in values if v not in self.allowed]
        if wrong:
            raise ValueError(f"{wrong[0]} is not one of {', '.join(map(str, self.allowed))}")
        return values

    def fmt(self, value: list[int]) -> str:
        return ",".join(map(str, value))


@dataclass(frozen=True)
class EnumList(Type):
    """A comma separated list of some of `choices`."""

    choices: tuple[str, ...]

    @property
    def describe(self) -> str:
        return "comma separated list of " + ", ".join(self.choices)

    def parse(self, text: str, base_dir: str) -> list[str]:
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]  # VerneMQ's Erlang list: [vmq_status_http, vmq_health_http]
        values = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [v for v in values if v not in self.choices]
        if wrong:
            raise ValueError(f"{wrong[0]} is not one of {', '.join(self.choices)}")
        return values

    def fmt(self, value: list[str]) -> str:
        return ",".join(value)


class ErlangTerm(Type):
    """An Erlang term as VerneMQ takes it (tcp_listen_options): lists, tuples, atoms, numbers."""

    describe = "an Erlang term, e.g. [{nodelay, true}, {linger, {true, 0}}]"

    def parse(self, text: str, base_dir: str) -> Any:
        from vmqpy import erlang_terms

        return erlang_terms.parse(text)

    def fmt(self, value: Any) -> str:
        from vmqpy import erlang_terms

        return erlang_terms.to_text(value)


class Address(Type):
    describe = "IP:PORT (IPv6 as [ADDR]:PORT)"

    def parse(self, text: str, base_dir: str) -> tuple[str, int]:
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", text)
        if not match:
            raise ValueError(f"expected {self.describe}, got {text!r}")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if port > 65535:
            raise ValueError(f"port {port} is out of range")
        return host, port

    def fmt(self, value: tuple[str, int]) -> str:
        host, port = value
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Path(Type):
    """A file or directory; relative paths are made absolute against the base directory."""

    describe = "a path, relative to the node root (the directory above etc/); $(platform_data_dir) etc. substitute"

    def parse(self, text: str, base_dir: str) -> str:
        # empty means "not set" (e.g. listener.ssl.cafile): it must not become the base directory
        return os.path.normpath(os.path.join(base_dir, text)) if text else ""


class Mountpoint(Type):
    describe = "a topic prefix, or off (none)"

    def parse(self, text: str, base_dir: str) -> str:
        return "" if text == "off" else text  # VerneMQ's listener.mountpoint = off: no mountpoint


class Words(Type):
    describe = "comma separated names"

    def parse(self, text: str, base_dir: str) -> tuple[str, ...]:
        return tuple(word.strip() for word in text.split(",") if word.strip())

    def fmt(self, value: tuple[str, ...]) -> str:
        return ",".join(value)


class NodeName(Type):
    describe = "name@host"

    def parse(self, text: str, base_dir: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", text):
            raise ValueError(f"expected name@host, got {text!r}")
        return text


class BridgeTopic(Type):
    """One `vmq_bridge.*.NAME.topic.N` line: VerneMQ's (and mosquitto's) bridge topic syntax.

    `pattern [[[ out | in | both ] qos] [retain]] [local-prefix remote-prefix]`; `*` stands for `#`
    (a bare `#` starts a comment unless the value is quoted), `$empty` or `""` for an empty prefix.
    """

    describe = 'pattern [[[ out | in | both ] qos-level] [retain]] [local-prefix remote-prefix]'

    def parse(self, text: str, base_dir: str) -> BridgeTopicSpec:
        words = text.replace("*", "#").split()
        if not words:
            raise ValueError(f"expected {self.describe}, got an empty value")
        pattern, rest = words[0], words[1:]
        direction = rest.pop(0) if rest and rest[0] in ("out", "in", "both") else "out"
        qos = int(rest.pop(0)) if rest and rest[0] in ("0", "1", "2") else 0
        retain = bool(rest) and rest[0] == "retain"
        if retain:
            rest.pop(0)
        if len(rest) not in (0, 2):
            raise ValueError(f"expected {self.describe}, got {text!r}")
        local, remote = ("" if p in ("$empty", '""') else p for p in rest) if rest else ("", "")
        for prefix in (local, remote):
            if "+" in prefix or "#" in prefix:
                raise ValueError(f"a prefix must not hold wildcards, got {prefix!r}")
        return BridgeTopicSpec(pattern, direction, qos, retain, local, remote)

    def fmt(self, value: BridgeTopicSpec) -> str:
        prefixes = f" {value.local_prefix or '$empty'} {value.remote_prefix or '$empty'}" \
            if value.local_prefix or value.remote_prefix else ""
        retain = " retain" if value.retain else ""
        return f"{value.pattern} {value.direction} {value.qos}{retain}{prefixes}"


@dataclass(frozen=True)
class BridgeTopicSpec:
    pattern: str
    direction: str  # out, in or both
    qos: int
    retain: bool  # the retain flag crosses the bridge (VerneMQ's `retain` word); else it is cleared
    local_prefix: str
    remote_prefix: str
