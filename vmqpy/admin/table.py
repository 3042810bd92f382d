"""VerneMQ-style ASCII tables for vmq-admin output."""

from __future__ import annotations


def render_table(rows: list[dict], columns: list[str]) -> str:
    """+----+ framed table with a header row, as `vmq-admin ... show` prints."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: list[str]) -> str:
        return "|" + "|".join(f" {v:<{w}} " for v, w in zip(values, widths, strict=True)) + "|"

    return "\n".join([sep, line(columns), sep, *(line(r) for r in cells), sep])
