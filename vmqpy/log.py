"""Logging set-up from the `log.*` keys: console, file with rotation, syslog."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

FORMAT = "%(asctime)s.%(msecs)03d [%(levelname)s] %(name)s: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_COUNT = 5


def setup(cfg) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    level = getattr(logging, str(cfg["log.console.level"]).upper(), logging.INFO)
    root.setLevel(level)
    fmt = logging.Formatter(FORMAT, DATEFMT)
    mode = cfg["log.console"]
    handlers: list[logging.Handler] = []
    if mode in ("console", "both"):
        handlers.append(logging.StreamHandler(sys.stderr))
    if mode in ("file", "both"):
        handlers.append(_file_handler(cfg["log.console.file"], level))
    if cfg.get("log.error.file"):
        handlers.append(_file_handler(cfg["log.error.file"], logging.ERROR))
    if cfg.get("log.syslog") and os.path.exists("/dev/log"):
        syslog = logging.handlers.SysLogHandler("/dev/log")
        syslog.setFormatter(logging.Formatter("vernemq[%(process)d]: %(name)s: %(message)s"))
        handlers.append(syslog)
    for h in handlers:
        if h.formatter is None:
            h.setFormatter(fmt)
        root.addHandler(h)


def _file_handler(path: str, level: int) -> logging.Handler:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = logging.handlers.RotatingFileHandler(path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_COUNT)
    h.setLevel(level)
    return h
