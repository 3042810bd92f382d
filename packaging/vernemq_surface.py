#!/usr/bin/env python3
"""How much of VerneMQ's operator surface vmqpy has: vmq-admin commands, and config keys.

    .venv/bin/python packaging/vernemq_surface.py [--list]     counts (--list: every command)
    .venv/bin/python packaging/vernemq_surface.py --regenerate /path/to/vernemq

Commands: test/vernemq_cli/commands.txt lists every `vmq-admin` command VerneMQ registers
(`Cmd = ["vmq-admin", ...]` in its *_cli.erl sources); --regenerate writes it again from a
VerneMQ checkout. A command is present when vmqpy's command tree has it. Erlang-only
notions vmqpy answers with an explanation instead (ERLANG_ONLY) count as present and are
listed apart.

Config keys: the key table is test/vernemq_keys (keys.json, from VerneMQ's schema files, and its
coverage.py: honoured / no-op / pending / missing); this script prints its summary.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS_TXT = REPO / "test" / "vernemq_cli" / "commands.txt"
KEYS_COVERAGE = REPO / "test" / "vernemq_keys" / "coverage.py"
# answered with why the notion does not apply here (vmq-admin prints it)
ERLANG_ONLY = {("node", "upgrade"): "hot code upgrade", ("node", "flag_as_init_synced"): "SWC's initial sync"}
_CMD = re.compile(r'Cmd\s*=\s*\["vmq-admin"((?:\s*,\s*"[^"]+")+)\s*\]')


def _git(checkout: Path, *args: str) -> str:
    where = ["-C", str(checkout)] if (checkout / "apps").is_dir() else ["--git-dir", str(checkout)]
    return subprocess.run(["git", *where, *args], capture_output=True, text=True, check=True).stdout


def _cli_sources(checkout: Path) -> list[str]:
    """The text of every apps/*/src/*_cli.erl of a work tree, or of HEAD of a bare git directory."""
    if (checkout / "apps").is_dir():
        return [p.read_text(errors="replace") for p in sorted(checkout.glob("apps/*/src/*_cli.erl"))]
    names = [n for n in _git(checkout, "ls-tree", "-r", "--name-only", "HEAD", "apps").splitlines()
             if re.fullmatch(r"apps/[^/]+/src/[^/]+_cli\.erl", n)]
    return [_git(checkout, "show", f"HEAD:{n}") for n in names]


def regenerate(checkout: Path) -> None:
    commands = set()
    for text in _cli_sources(checkout):
        for match in _CMD.finditer(text):
            commands.add(" ".join(re.findall(r'"([^"]+)"', match.group(1))))
    head = _git(checkout, "rev-parse", "HEAD")
    COMMANDS_TXT.parent.mkdir(parents=True, exist_ok=True)
    header = f"# vmq-admin commands of VerneMQ {head.strip()} (packaging/vernemq_surface.py --regenerate)\n"
    COMMANDS_TXT.write_text(header + "".join(f"{c}\n" for c in sorted(commands)))
    print(f"{COMMANDS_TXT.relative_to(REPO)}: {len(commands)} commands")


def vernemq_commands() -> list[tuple[str, ...]]:
    lines = COMMANDS_TXT.read_text().splitlines()
    return [tuple(line.split()) for line in lines if line and not line.startswith("#")]


def vmqpy_commands() -> set[tuple[str, ...]]:
    sys.path.insert(0, str(REPO))
    import vmqpy.admin.rpc  # noqa: F401  (the admin socket's module registers every command group)
    from vmqpy.admin.commands import COMMANDS

    return set(COMMANDS)


def report_commands(listing: bool) -> None:
    theirs, ours = vernemq_commands(), vmqpy_commands()
    present = [c for c in theirs if c in ours]
    erlang = [c for c in present if c in ERLANG_ONLY]
    print(f"vmq-admin commands: {len(present)} of VerneMQ's {len(theirs)} present "
          f"({len(erlang)} of them answer that an Erlang-only notion does not apply: "
          f"{', '.join(' '.join(c) for c in erlang) or 'none'}); "
          f"{len(ours - set(theirs))} of vmqpy's own")
    if listing:
        for c in theirs:
            mark = "erlang-only" if c in ERLANG_ONLY else "present" if c in ours else "MISSING"
            print(f"  {mark:12} vmq-admin {' '.join(c)}")
    else:
        missing = [" ".join(c) for c in theirs if c not in ours]
        print(f"  missing: {', '.join(missing) or 'none'}")


def report_keys() -> None:
    if not KEYS_COVERAGE.exists():
        print(f"config keys: the key table ({KEYS_COVERAGE.parent.relative_to(REPO)}) is not in this checkout")
        return
    out = subprocess.run([sys.executable, str(KEYS_COVERAGE)], capture_output=True, text=True, cwd=REPO)
    print(out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else f"config keys: {out.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regenerate", metavar="VERNEMQ_CHECKOUT", type=Path)
    parser.add_argument("--list", action="store_true", help="every VerneMQ command and whether vmqpy has it")
    args = parser.parse_args()
    if args.regenerate:
        regenerate(args.regenerate)
        return
    report_keys()
    report_commands(args.list)


if __name__ == "__main__":
    main()
