"""Logging set-up from VerneMQ's `log.*` keys: console, console and error files with size rotation,
text or JSON lines, syslog (local or remote)."""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import math
import os
import shutil
import socket
import ssl
import sys
import time

DATEFMT = "%Y-%m-%d %H:%M:%S"
_TEMPLATES = {  # log.template, as files/vmq.schema's Erlang logger templates
    "simple": "%(asctime)s.%(msecs)03d %(levelname)s: %(message)s",
    "extended": "%(asctime)s.%(msecs)03d [%(levelname)s] <%(process)d> %(name)s: %(message)s",
}
FORMAT = _TEMPLATES["extended"]

# VerneMQ's severities that Python lacks, between and above Python's own
NOTICE, ALERT, EMERGENCY = 25, 55, 60
for _level, _name in ((NOTICE, "NOTICE"), (ALERT, "ALERT"), (EMERGENCY, "EMERGENCY")):
    logging.addLevelName(_level, _name)
LEVELS = {"all": logging.NOTSET, "debug": logging.DEBUG, "info": logging.INFO, "notice": NOTICE,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "alert": ALERT, "emergency": EMERGENCY, "none": EMERGENCY + 10}  # none lets nothing through


class JsonFormatter(logging.Formatter):
    """One JSON object a line with VerneMQ's (vmq_log_json_format's) fields: time, level, msg, pid, logger."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
               + f".{int(record.msecs):03d}" + time.strftime("%z", time.localtime(record.created)),
               "level": record.levelname.lower(), "msg": record.getMessage(), "pid": record.process,
               "logger": record.name}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup(cfg) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    level = max(LEVELS[cfg["log.console.level"]], LEVELS[cfg["log.level"]])
    root.setLevel(level)
    text = logging.Formatter(_TEMPLATES[cfg["log.template"]], DATEFMT)
    formats = {"text": text, "json": JsonFormatter()}
    mode = cfg["log.console"]
    handlers: list[logging.Handler] = []
    # handler names are VerneMQ's logger handler ids (`vmq-admin log level logger=consolefile ...`)
    if mode in ("console", "both"):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(formats[cfg["log.console.console.format"]])
        console.setLevel(level)  # each handler has its own, so `log level` can change one alone
        handlers.append(_named("console", console))
    if mode in ("file", "both"):
        handlers.append(_named("consolefile", _file_handler(cfg, "console", level,
                                                            formats[cfg["log.console.file.format"]])))
    if cfg["log.error"]:
        handlers.append(_named("default", _file_handler(cfg, "error", logging.ERROR,
                                                        formats[cfg["log.error.file.format"]])))
    if cfg["log.syslog"]:
        syslog = _syslog_handler(cfg)
        if syslog:
            syslog.setLevel(max(level, LEVELS[cfg["log.syslog.level"]]))
            handlers.append(_named("syslog", syslog))
    for h in handlers:
        root.addHandler(h)


def _named(name: str, handler: logging.Handler) -> logging.Handler:
    handler.set_name(name)
    return handler


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


def _file_handler(cfg, log: str, level: int, formatter: logging.Formatter) -> logging.Handler:
    path = cfg[f"log.{log}.file"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    size = cfg[f"log.{log}.rotation.size"]
    keep = cfg[f"log.{log}.rotation.keep"]
    h = logging.handlers.RotatingFileHandler(path, maxBytes=0 if size == math.inf else size, backupCount=keep)
    if keep == 0:  # Erlang logger: only the current file is kept, so a full file starts over
        h.rotator = lambda source, _dest: open(source, "w").close()
    elif cfg[f"log.{log}.rotation.compress_on_rotate"]:
        h.namer = lambda name: name + ".gz"
        h.rotator = _gzip_rotate
    h.setLevel(level)
    h.setFormatter(formatter)
    return h


def _gzip_rotate(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    os.remove(source)


class _Rfc5424(logging.Formatter):
    """The part after `<PRI>` (which SysLogHandler adds): VERSION TIMESTAMP HOST APP PID MSGID SD MSG."""

    def __init__(self, app: str) -> None:
        super().__init__()
        self.app, self.host = app, socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        return f"1 {stamp} {self.host} {self.app} {record.process} - - {record.name}: {record.getMessage()}"


def _syslog_handler(cfg) -> logging.Handler | None:
    host = cfg.get("log.syslog.remote.host")
    protocol = cfg["log.syslog.remote.protocol"]
    if host:
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        address: str | tuple[str, int] = (host, cfg["log.syslog.remote.port"])
    elif os.path.exists("/dev/log"):
        kind, address = socket.SOCK_DGRAM, "/dev/log"
    else:
        return None
    facility = cfg["log.syslog.facility"]
    # Erlang syslog's names for facilities 0, 13, 14 and 15
    facility = {"kernel": "kern", "logaudit": "security", "logalert": "console",
                "clock": "solaris-cron"}.get(facility, facility)
    h = logging.handlers.SysLogHandler(address, logging.handlers.SysLogHandler.facility_names[facility], kind)
    if host and protocol == "tls":  # the TCP connection SysLogHandler opened, now in TLS (RFC 5425)
        ctx = ssl.create_default_context(cafile=cfg.get("log.syslog.remote.tls.cafile") or None)
        h.socket = ctx.wrap_socket(h.socket, server_hostname=host)
    h.append_nul = False
    app = cfg.get("log.syslog.app_name") or "vernemq"
    if cfg["log.syslog.format"] == "rfc5424":
        h.setFormatter(_Rfc5424(app))
    else:
        h.setFormatter(logging.Formatter(f"{app}[%(process)d]: %(name)s: %(message)s"))
    if kind == socket.SOCK_STREAM:  # TCP syslog frames end in a newline (RFC 6587 non-transparent framing)
        h.setFormatter(_Newline(h.formatter))
    return h


class _Newline(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record) + "\n"
