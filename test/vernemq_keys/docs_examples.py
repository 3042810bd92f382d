#!/usr/bin/env python3
"""Rebuild test/vernemq_keys/docs_examples/*.conf: the vernemq.conf examples of VerneMQ's documentation.

    test/vernemq_keys/docs_examples.py VMQ_DOCS_GIT_DIR

reads every page of github.com/vernemq/vmq-docs at HEAD and keeps, per page, the `key = value` lines of
its code blocks that VerneMQ's own schema accepts (keys.json; a key some page misspells, or a line
listing alternatives `a | b`, is left out and named in the file's header). A key set twice on a page
keeps its last value, as cuttlefish does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from coverage import table

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "docs_examples")
_LINE = re.compile(r"\s*([a-z][\w.-]*)\s*=\s*(\S.*?)\s*")


def vernemq_row(name: str, patterns: list[tuple[re.Pattern[str], dict]]) -> dict | None:
    """The mapping cuttlefish reads `name` with: an exact key before a pattern."""
    found = [row for pattern, row in patterns if pattern.fullmatch(name)]
    return next((row for row in found if row["key"] == name), found[0] if found else None)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(__doc__)
    git = ["git", "--git-dir", argv[0]]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    pages = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD"], check=True, capture_output=True,
                           text=True).stdout.split()
    patterns = [(re.compile(re.sub(r"\\\$\w+", r"[\\w-]+", re.escape(row["key"]))), row) for row in table()]
    os.makedirs(OUT, exist_ok=True)
    for page in sorted(p for p in pages if p.endswith(".md") and not p.startswith(("versioned", "v1"))):
        text = subprocess.run([*git, "show", f"HEAD:{page}"], check=True, capture_output=True, text=True).stdout
        kept: dict[str, str] = {}
        skipped = []
        for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
            for line in block.splitlines():
                match = _LINE.fullmatch(line)
                if not match or "." not in match.group(1) and "_" not in match.group(1):
                    continue
                key, value = match.groups()
                if " | " in value:
                    skipped.append(f"{line.strip()}  (alternatives, not a value)")
                elif (row := vernemq_row(key, patterns)) and row["datatype"].startswith("ip") \
                        and not re.fullmatch(r"\S+:\d+", value):
                    skipped.append(f"{line.strip()}  (VerneMQ reads it as the address of a listener)")
                elif row:
                    kept.pop(key, None)
                    kept[key] = value
                elif not key.startswith(("net.", "fs.")):  # not the sysctl lines of the tuning guides
                    skipped.append(f"{line.strip()}  (not a key of VerneMQ's schema)")
        if not kept:
            continue
        name = page.removesuffix(".md").replace("/", "--") + ".conf"
        with open(os.path.join(OUT, name), "w") as f:
            f.write(f"## From vernemq/vmq-docs {commit} {page}\n")
            f.writelines(f"## left out: {line}\n" for line in skipped)
            f.writelines(f"{key} = {value}\n" for key, value in kept.items())
        print(f"{name}: {len(kept)} keys, {len(skipped)} left out")


if __name__ == "__main__":
    main(sys.argv[1:])
