"""The Erlang terms some VerneMQ keys hold as text (`tcp_listen_options`, `http_modules`).

Enough of the syntax for option lists: lists, tuples, atoms (bare or quoted),
integers, floats and "strings". Atoms become str, `true`/`false` bool,
lists list and tuples tuple.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"""\s*(?:(?P<punct>[\[\]{},])|(?P<num>-?\d+(?:\.\d+)?)|'(?P<quoted>[^']*)'|"(?P<str>[^"]*)"|"""
                    r"""(?P<atom>[a-z][\w@]*))""")


def parse(text: str) -> Any:
    """The term `text` holds (a trailing `.` is allowed); ValueError when it holds something else."""
    tokens = _tokens(text.strip().removesuffix("."))
    value, rest = _term(tokens)
    if rest:
        raise ValueError(f"unexpected {rest[0][1]!r} after the term")
    return value


def _tokens(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if not m:
            raise ValueError(f"not an Erlang term at {text[i:i + 20]!r}")
        kind = m.lastgroup or "punct"
        out.append((kind, m.group(kind)))
        i = m.end()
    return out


def _term(tokens: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
    if not tokens:
        raise ValueError("missing term")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "num":
        return (float(value) if "." in value else int(value)), rest
    if kind in ("quoted", "str"):
        return value, rest
    if kind == "atom":
        return {"true": True, "false": False}.get(value, value), rest
    if value in "[{":
        close = "]" if value == "[" else "}"
        items: list[Any] = []
        while rest and rest[0][1] != close:
            item, rest = _term(rest)
            items.append(item)
            if rest and rest[0][1] == ",":
                rest = rest[1:]
        if not rest:
            raise ValueError(f"missing {close!r}")
        return (items if close == "]" else tuple(items)), rest[1:]
    raise ValueError(f"unexpected {value!r}")


def to_text(value: Any) -> str:
    """The Erlang text of a parsed term (the inverse of parse, for `config show`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(to_text, value)) + "]"
    if isinstance(value, tuple):
        return "{" + ", ".join(map(to_text, value)) + "}"
    return str(value)
