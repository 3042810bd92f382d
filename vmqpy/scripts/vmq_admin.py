"""`vmq-admin`: administer a running node through its admin socket."""

from __future__ import annotations

import argparse
import sys

from vmqpy.scripts.vernemq import default_config, load_config, not_responding

CALL_TIMEOUT = 30.0


def call_timeout(argv: list[str]) -> float:
    """Seconds to wait for the node: `trace client` answers after its --trace-timeout."""
    if argv[:2] != ["trace", "client"]:
        return CALL_TIMEOUT
    for word in argv[2:]:
        key, _, value = word.lstrip("-").partition("=")
        if key == "trace-timeout" and value.isdigit():
            return int(value) / 1000 + CALL_TIMEOUT
    return 10.0 + CALL_TIMEOUT


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="vmq-admin", add_help=False, allow_abbrev=False)
    parser.add_argument("--config", default=None)
    opts, rest = parser.parse_known_args(argv)
    cfg = load_config(opts.config or default_config())
    from vmqpy.admin.rpc import call

    try:
        ok, output = call(cfg["admin.socket"], rest, call_timeout(rest))
    except OSError:
        return not_responding(cfg)
    if output:
        print(output)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
