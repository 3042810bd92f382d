"""`vmq-admin`: administer a running node through its admin socket."""

from __future__ import annotations

import argparse
import sys

from vmqpy.scripts.vernemq import default_config, load_config, not_responding


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="vmq-admin", add_help=False)
    parser.add_argument("--config", default=None)
    opts, rest = parser.parse_known_args(argv)
    cfg = load_config(opts.config or default_config())
    from vmqpy.admin.rpc import call

    try:
        ok, output = call(cfg["admin.socket"], rest or ["--help"])
    except OSError:
        return not_responding(cfg)
    print(output)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
