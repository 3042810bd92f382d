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
    # handler names are VerneMQ's logger handler ids (`vmq-admin log level logger=consolefile ...`)
    if mode in ("console", "both"):
        handlers.append(_named("console", logging.StreamHandler(sys.stderr)))
    if mode in ("file", "both"):
        handlers.append(_named("consolefile", _file_handler(cfg["log.console.file"], level)))
    if cfg.get("log.error.file"):
        handlers.append(_named("default", _file_handler(cfg["log.error.file"], logging.ERROR)))
    if cfg.get("log.syslog") and os.path.exists("/dev/log"):
        syslog = _named("syslog", logging.handlers.SysLogHandler("/dev/log"))
        syslog.setFormatter(logging.Formatter("vernemq[%(process)d]: %(name)s: %(message)s"))
        handlers.append(syslog)
    for h in handlers:
        if h.level == logging.NOTSET:
            h.setLevel(level)  # each handler's own, so `log level` can change one without the others
        if h.formatter is None:
            h.setFormatter(fmt)
        root.addHandler(h)


def _named(name: str, handler: logging.Handler) -> logging.Handler:
    handler.set_name(name)
    return handler


def _file_handler(path: str, level: int) -> logging.Handler:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = logging.handlers.RotatingFileHandler(path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_COUNT)
    h.setLevel(level)
    return h


# VerneMQ's (Erlang logger's) level names -> Python's; `none` lets nothing through.
LEVELS = {"all": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "alert": logging.CRITICAL, "emergency": logging.CRITICAL, "none": logging.CRITICAL + 10}


def handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h.get_name()]


def set_level(name: str, level: str) -> bool:
    """Set the level of handler `name` at runtime (False: no such handler); the root logger lets
    through whatever the most verbose handler wants."""
    root = logging.getLogger()
    found = [h for h in handlers() if h.get_name() == name]
    for h in found:
        h.setLevel(LEVELS[level])
    if found:
        root.setLevel(min(h.level for h in root.handlers))
    return bool(found)
