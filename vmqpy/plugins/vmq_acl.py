"""vmq_acl: authorize PUBLISH and SUBSCRIBE with VerneMQ's ACL file.

    # comment
    topic [read|write|readwrite] TOPIC      before any `user` line: every client
    user NAME
    topic [read|write|readwrite] TOPIC      for clients logged in as NAME
    pattern [read|write|readwrite] TOPIC    every client; %u %c %m substituted

As in VerneMQ's vmq_acl, rules above the first `user` line and all `pattern`
rules apply to every client, anonymous or not. No access word means read and
write; `readwrite` is accepted as mosquitto writes it. Answers "ok" when a rule
allows, otherwise "next" (the broker refuses when no plugin says ok). A
SUBSCRIBE is "ok" only if every filter is allowed, as in VerneMQ.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from vmqpy.mqtt.topic import valid_filter
from vmqpy.plugins.manager import FileReloader

DEFAULT_FILE = "etc/vmq.acl"
DEFAULT_INTERVAL = 10  # seconds, VerneMQ's default

READ, WRITE = "read", "write"
_ACCESS = {None: (READ, WRITE), "readwrite": (READ, WRITE), "read": (READ,), "write": (WRITE,)}
_RULE = re.compile(r"(?P<kind>topic|pattern)[ \t]+(?:(?P<access>read|write|readwrite)[ \t]+)?(?P<topic>.+)")
_USER = re.compile(r"user[ \t]+(?P<name>.+)")

Words = tuple[str, ...]


class AclSyntaxError(ValueError):
    """An ACL file line that is not a comment, `user`, `topic` or `pattern` rule."""


@dataclass
class Acl:
    everyone: dict[str, list[Words]] = field(default_factory=lambda: {READ: [], WRITE: []})
    patterns: dict[str, list[Words]] = field(default_factory=lambda: {READ: [], WRITE: []})
    users: dict[tuple[str, str], list[Words]] = field(default_factory=dict)  # (access, user)

    def allows(self, access: str, topic: str, username: str | None,
               subscriber_id: tuple[str, str], wildcards: bool) -> bool:
        """Whether `topic` (a filter if `wildcards`, else a literal name) is covered."""
        words = topic.split("/")
        if any(covers(rule, words, wildcards) for rule in self.everyone[access]):
            return True
        if username is not None and any(
                covers(rule, words, wildcards) for rule in self.users.get((access, username), ())):
            return True
        mountpoint, client_id = subscriber_id
        for pattern in self.patterns[access]:
            rule = substitute(pattern, username, client_id, mountpoint)
            if rule is not None and covers(rule, words, wildcards):
                return True
        return False


def covers(rule: Words, words: list[str], wildcards: bool) -> bool:
    """Whether ACL topic `rule` covers every topic that `words` can name.

    With `wildcards` (a subscription filter) '+' and '#' in `words` are
    wildcards: a filter '#' is covered only by a rule '#', a filter '+' only by
    '+' or '#'. Without, they are plain characters of a topic name.
    """
    for i, level in enumerate(rule):
        if level == "#":
            return True
        if i >= len(words) or (wildcards and words[i] == "#"):
            return False
        if level != "+" and level != words[i]:
            return False
    return len(rule) == len(words)


def substitute(pattern: Words, username: str | None, client_id: str, mountpoint: str) -> Words | None:
    """The pattern with %u/%c/%m filled in, None if a value could widen access."""
    out = []
    for level, word in enumerate(pattern):
        if word in ("%u", "%c", "%m"):
            value = {"%u": username, "%c": client_id, "%m": mountpoint}[word]
            # '+', '#' or '/' in a value would turn a name into a wildcard or
            # another level; a leading '$' would reach $SYS-like trees; only the
            # mountpoint may be empty (the default one is "").
            if (value is None or (not value and word != "%m") or "+" in value or "#" in value
                    or "/" in value or (level == 0 and value.startswith("$"))):
                return None
            word = value
        out.append(word)
    return tuple(out)


def parse(text: str, source: str = "<acl>") -> Acl:
    acl = Acl()
    user: str | None = None  # None: above the first `user` line
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if m := _USER.fullmatch(line):
            user = m["name"]
            continue
        m = _RULE.fullmatch(line)
        if m is None:
            raise AclSyntaxError(f"{source}:{lineno}: not a topic, pattern or user line: {line!r}")
        topic = m["topic"].strip(" \t")
        if not valid_filter(topic):
            raise AclSyntaxError(f"{source}:{lineno}: invalid topic {topic!r}")
        for access in _ACCESS[m["access"]]:
            if m["kind"] == "pattern":
                acl.patterns[access].append(tuple(topic.split("/")))
            elif user is None:
                acl.everyone[access].append(tuple(topic.split("/")))
            else:
                acl.users.setdefault((access, user), []).append(tuple(topic.split("/")))
    return acl


def load(path: str) -> Acl:
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)


PUBLISH_CACHE_MAX = 65536  # decisions kept; the cache starts over when full


class AclPlugin:
    """The hooks over the current ACL file.

    auth_on_publish runs for every message, so its answers are cached per
    (username, subscriber id, topic) until the file is reloaded.
    """

    hooks_never_block = True  # dictionary lookups only; the file reloads in a greenlet of its own

    def __init__(self, path: str, interval: float) -> None:
        self._acl = Acl()
        self._published: dict[tuple, str] = {}
        self.reloader = FileReloader("vmq_acl", path, interval, load, self._set_acl)

    def _set_acl(self, acl: Acl) -> None:
        # One rebinding each: a check never sees half a file or an answer of the old one.
        self._acl = acl
        self._published = {}

    def auth_on_publish(self, username: str | None, subscriber_id: tuple[str, str], qos: int,
                        topic: str, payload: bytes, is_retain: bool) -> str:
        key = (username, subscriber_id, topic)
        cache = self._published
        answer = cache.get(key)
        if answer is None:
            allowed = self._acl.allows(WRITE, topic, username, subscriber_id, wildcards=False)
            answer = "ok" if allowed else "next"
            if len(cache) >= PUBLISH_CACHE_MAX:
                cache.clear()
            cache[key] = answer
        return answer

    def auth_on_publish_m5(self, username: str | None, subscriber_id: tuple[str, str], qos: int,
                           topic: str, payload: bytes, is_retain: bool, properties: dict) -> str:
        return self.auth_on_publish(username, subscriber_id, qos, topic, payload, is_retain)

    def auth_on_subscribe(self, username: str | None, subscriber_id: tuple[str, str],
                          topics: list[tuple[str, Any]]) -> str:
        acl = self._acl  # the whole SUBSCRIBE is judged by one version of the file
        allowed = all(acl.allows(READ, t[0], username, subscriber_id, wildcards=True) for t in topics)
        return "ok" if allowed else "next"

    def auth_on_subscribe_m5(self, username: str | None, subscriber_id: tuple[str, str],
                             topics: list[tuple[str, Any]], properties: dict) -> str:
        return self.auth_on_subscribe(username, subscriber_id, topics)

    def stop(self) -> None:
        self.reloader.stop()


def check(settings: dict[str, Any], config: Any = None) -> tuple[str, str] | None:
    """A missing ACL file refuses the start: without it every publish and subscribe would be denied."""
    path = settings.get("acl_file", DEFAULT_FILE)
    if os.path.exists(path):
        return None
    return "vmq_acl.acl_file", (f"the ACL file {path} does not exist: create it (an empty file allows nothing), "
                        "or set plugins.vmq_acl = off")


def start(settings: dict[str, Any], ctx: object) -> AclPlugin:
    problem = check(settings)
    if problem is not None:
        raise FileNotFoundError(problem[1])
    plugin = AclPlugin(settings.get("acl_file", DEFAULT_FILE),
                       settings.get("acl_reload_interval", DEFAULT_INTERVAL))
    plugin.reloader.start()
    return plugin
