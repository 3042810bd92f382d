"""Write a vernemq.conf for a release or a package from the repository's etc/vernemq.conf.

The repository's file stays the one documented source; a release or a package
only changes known keys, so its comments and every other default carry over:

    genconf.py SRC DEST --set platform_data_dir=./data --listen-ip 127.0.0.1

--set KEY=VALUE   replaces the active `KEY = ...` line; else uncomments the
                  documented example (`# KEY = ...`) with VALUE, so the
                  setting stays beside its documentation; else appends it.
                  When KEY is a platform_*_dir, other values under the old
                  directory move with it (log.console.file = ./log/console.log).
--listen-ip IP    binds every active `listener.<kind>.<name> = HOST:PORT` to IP.
"""

import argparse
import re
import sys

ACTIVE = re.compile(r"^(?P<key>[A-Za-z0-9_.$]+)\s*=\s*(?P<value>.*?)\s*$")
DOCUMENTED = re.compile(r"^#+\s*(?P<key>[A-Za-z0-9_.$]+)\s*=")
LISTENER = re.compile(r"^listener\.[a-z0-9_]+\.[A-Za-z0-9_]+$")
ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:]*\]|[^\s:]+):(?P<port>\d+)$")


def parse_set(item):
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    return key.strip(), value.strip()


def active_lines(lines):
    """Yield (index, key, value) for every line that sets a key."""
    for i, line in enumerate(lines):
        m = ACTIVE.match(line)
        if m:
            yield i, m["key"], m["value"]


def moved_path(value, moves):
    """VALUE with a leading old platform directory replaced by its new one."""
    for old, new in moves.items():
        if value == old or value.startswith(old.rstrip("/") + "/"):
            return new + value[len(old) :]
    return value


def generate(text, settings, listen_ip=None):
    lines = text.splitlines()
    current = {key: value for _, key, value in active_lines(lines)}
    moves = {
        current[key]: value
        for key, value in settings.items()
        if key.startswith("platform_") and key.endswith("_dir") and current.get(key, value) != value
    }
    pending = dict(settings)
    for i, key, value in active_lines(lines):
        if key in settings:
            lines[i] = f"{key} = {settings[key]}"
            pending.pop(key, None)
            continue
        new = moved_path(value, moves)
        if listen_ip and LISTENER.match(key):
            m = ADDRESS.match(new)
            if m:
                host = f"[{listen_ip}]" if ":" in listen_ip else listen_ip
                new = f"{host}:{m['port']}"
        if new != value:
            lines[i] = f"{key} = {new}"
    for i, line in enumerate(lines):
        m = DOCUMENTED.match(line)
        if m and m["key"] in pending:
            lines[i] = f"{m['key']} = {pending.pop(m['key'])}"
    if pending:
        lines += ["", "## Set for this release or package."]
        lines += [f"{key} = {value}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dest")
    parser.add_argument("--set", dest="settings", type=parse_set, action="append", default=[])
    parser.add_argument("--listen-ip")
    args = parser.parse_args(argv)
    with open(args.src, encoding="utf-8") as f:
        text = generate(f.read(), dict(args.settings), args.listen_ip)
    with open(args.dest, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
