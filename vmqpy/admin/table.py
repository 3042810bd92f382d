"""vmq-admin output: VerneMQ-style ASCII tables, or (`--format=json`) the JSON of VerneMQ's clique writer."""

from __future__ import annotations

from typing import Any

import ujson

FORMATS = ("human", "json")


def render_table(rows: list[dict], columns: list[str]) -> str:
    """+----+ framed table with a header row, as `vmq-admin ... show` prints."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: list[str]) -> str:
        return "|" + "|".join(f" {v:<{w}} " for v, w in zip(values, widths, strict=True)) + "|"

    return "\n".join([sep, line(columns), sep, *(line(r) for r in cells), sep])


def table_document(rows: list[dict], columns: list[str]) -> dict[str, Any]:
    """vmq_cli_json_writer's table: {"type": "table", "table": [{column: value}, ...]}; numbers and
    booleans stay JSON numbers and booleans, a missing value is null."""
    return {"type": "table", "table": [{c: _json_value(r.get(c)) for c in columns} for r in rows]}


def text_document(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def render_json(document: dict[str, Any], ok: bool) -> str:
    """A command's JSON output; a failed command's text is clique's alert."""
    if not ok and document.get("type") == "text":
        document = {"type": "alert", "alert": [document]}
    return ujson.dumps(document, ensure_ascii=False)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def split_format(argv: list[str]) -> tuple[list[str], str | None]:
    """argv without its `--format=X` word, and X (None: not given)."""
    fmt = None
    rest = []
    for word in argv:
        if word.startswith("--format="):
            fmt = word.partition("=")[2]
        else:
            rest.append(word)
    return rest, fmt
