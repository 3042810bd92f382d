"""vmq_passwd: authenticate CONNECT against a vmq-passwd / mosquitto_passwd file.

Answers auth_on_register(_m5): "ok" for a known user with the right password,
("error", "invalid_credentials") for a known user with a wrong one, and
"next" otherwise (no username or password, user not in the file) so that
other plugins may answer. The broker never calls it when allow_anonymous=on.
"""

from __future__ import annotations

from typing import Any

from vmqpy.plugins import passwd_file
from vmqpy.plugins.manager import FileReloader

DEFAULT_FILE = "etc/vmq.passwd"
DEFAULT_INTERVAL = 10  # seconds, VerneMQ's default


class PasswdPlugin:
    hooks_never_block = True  # a table lookup and a hash check, CPU only; the file reloads in its own greenlet

    def __init__(self, path: str, interval: float) -> None:
        self._table: dict[str, passwd_file.PasswordHash] = {}
        self.reloader = FileReloader("vmq_passwd", path, interval, passwd_file.load, self._set_table)

    def _set_table(self, table: dict[str, passwd_file.PasswordHash]) -> None:
        self._table = table  # one rebinding: a check never sees half a file

    def check(self, username: str | None, password: bytes | None) -> Any:
        if username is None or password is None:
            return "next"
        entry = self._table.get(username)
        if entry is None:
            return "next"
        return "ok" if entry.verify(password) else ("error", "invalid_credentials")

    def auth_on_register(self, peer: Any, subscriber_id: Any, username: str | None,
                         password: bytes | None, clean_session: bool) -> Any:
        return self.check(username, password)

    def auth_on_register_m5(self, peer: Any, subscriber_id: Any, username: str | None,
                            password: bytes | None, clean_start: bool, properties: dict) -> Any:
        return self.check(username, password)

    def stop(self) -> None:
        self.reloader.stop()


def start(settings: dict[str, Any], ctx: object) -> PasswdPlugin:
    plugin = PasswdPlugin(settings.get("password_file", DEFAULT_FILE),
                          settings.get("password_reload_interval", DEFAULT_INTERVAL))
    plugin.reloader.start()
    return plugin
