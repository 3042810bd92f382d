"""The auth cache of vmq_diversity (VerneMQ's vmq_diversity_cache): per-client ACLs.

A script's auth_on_register calls `auth_cache.insert(mountpoint, client_id, username,
publish_acl, subscribe_acl)`; afterwards every PUBLISH and SUBSCRIBE of that client
is judged here, without the database, until the client goes offline or is gone.

An ACL entry is a table as VerneMQ's table layout holds it in JSON:
`{"pattern": "a/%u/#", "max_qos": 1, "allowed_retain": false, "max_payload_size": 100,
"modifiers": {...}}`. `%u`, `%c` and `%m` are filled in at insert time with vmq_acl's
security rule (vmq_acl.substitute): a value holding `+`, `#` or `/`, an empty one, or a
`$` on the first level drops the entry, so a username like `+` never widens access.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vmqpy.mqtt.topic import valid_filter
from vmqpy.plugins.vmq_acl import covers, substitute

log = logging.getLogger(__name__)

MAX_PAYLOAD_SIZE = 268435456  # VerneMQ's default max_payload_size
PUBLISH_MODIFIERS = frozenset({"topic", "payload", "qos", "retain", "mountpoint", "properties"})

Words = tuple[str, ...]
Key = tuple[str, str]  # (mountpoint, client_id)


@dataclass(frozen=True)
class PublishAcl:
    pattern: Words
    max_qos: int = 2
    max_payload_size: int = MAX_PAYLOAD_SIZE
    allowed_retain: bool = True
    modifiers: dict[str, Any] | None = None


@dataclass(frozen=True)
class SubscribeAcl:
    pattern: Words
    max_qos: int = 2
    modifiers: tuple[str, int] | None = None  # the filter (and QoS) subscribed instead


MEMO_MAX = 1024  # publish decisions remembered per client (topics are few per device)


@dataclass(frozen=True)
class Entry:
    username: str
    publish: tuple[PublishAcl, ...]
    subscribe: tuple[SubscribeAcl, ...]
    # (topic, qos, retain) -> decision, kept while no entry limits the payload size (the
    # decision then depends on nothing else): a repeated PUBLISH is one dictionary lookup.
    memo: dict[tuple[str, int, bool], Any] = field(default_factory=dict, compare=False)

    @property
    def memoizable(self) -> bool:
        return all(acl.max_payload_size == MAX_PAYLOAD_SIZE for acl in self.publish)


class AuthCache:
    """ACLs by (mountpoint, client id). Lookups are dictionary reads: they never block.

    An entry inserted by auth_on_register waits as pending until the session registers
    (`activate`, from on_register): a session closing while its client reconnects clears only
    its own entry, and a session taken over by one that did not come through here (another
    plugin said ok) takes the old entry away with it.
    """

    def __init__(self) -> None:
        self._pending: dict[Key, Entry] = {}
        self._active: dict[Key, Entry] = {}

    def insert(self, mountpoint: str, client_id: str, username: str,
               publish_acl: list[dict] | None, subscribe_acl: list[dict] | None) -> None:
        subst = (username, client_id, mountpoint)
        pub = tuple(a for a in (_publish_acl(raw, *subst) for raw in publish_acl or ()) if a)
        sub = tuple(a for a in (_subscribe_acl(raw, *subst) for raw in subscribe_acl or ()) if a)
        self._pending[(mountpoint, client_id)] = Entry(username, pub, sub)

    def activate(self, mountpoint: str, client_id: str) -> None:
        """The session registered: its pending entry (or none) is now the client's."""
        entry = self._pending.pop((mountpoint, client_id), None)
        if entry is None:
            self._active.pop((mountpoint, client_id), None)
        else:
            self._active[(mountpoint, client_id)] = entry

    def clear(self, mountpoint: str, client_id: str) -> None:
        self._active.pop((mountpoint, client_id), None)

    def clear_all(self) -> None:
        self._pending.clear()
        self._active.clear()

    def __len__(self) -> int:
        return len(self._active)

    def entry(self, mountpoint: str, client_id: str) -> Entry | None:
        key = (mountpoint, client_id)
        return self._active.get(key) or self._pending.get(key)

    def match_publish(self, mountpoint: str, client_id: str, qos: int, topic: str, payload: bytes,
                      retain: bool) -> bool | dict | None:
        """True (allowed), a dict (allowed with these modifiers), False (refused), None (no entry)."""
        entry = self.entry(mountpoint, client_id)
        if entry is None:
            return None
        key = (topic, qos, retain)
        answer = entry.memo.get(key)
        if answer is None:
            answer = _decide_publish(entry, qos, topic, len(payload), retain)
            if len(entry.memo) < MEMO_MAX and entry.memoizable:
                entry.memo[key] = answer
        return answer

    def match_subscribe(self, mountpoint: str, client_id: str, topic_filter: str,
                        qos: int) -> bool | tuple[str, int] | None:
        """True, a (filter, qos) to subscribe instead, False, or None (no entry)."""
        entry = self.entry(mountpoint, client_id)
        if entry is None:
            return None
        words = topic_filter.split("/")
        for acl in entry.subscribe:
            if qos <= acl.max_qos and covers(acl.pattern, words, True):
                return acl.modifiers or True
        return False


def _decide_publish(entry: Entry, qos: int, topic: str, size: int, retain: bool) -> bool | dict:
    words = topic.split("/")
    for acl in entry.publish:
        if (qos <= acl.max_qos and size <= acl.max_payload_size and (acl.allowed_retain or not retain)
                and covers(acl.pattern, words, False)):
            return acl.modifiers or True
    return False


def _pattern(raw: dict, username: str, client_id: str, mountpoint: str) -> Words | None:
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not valid_filter(pattern):
        log.error("vmq_diversity: can't validate ACL topic %r for client %r", pattern, client_id)
        return None
    words = substitute(tuple(pattern.split("/")), username, client_id, mountpoint)
    if words is None:
        log.warning("vmq_diversity: ACL pattern %r dropped for client %r: a substituted value "
                    "would widen it", pattern, client_id)
    return words


def _qos(raw: dict) -> int:
    value = raw.get("max_qos", 2)
    return int(value) if isinstance(value, int | float) and 0 <= value <= 2 else 2


def _publish_acl(raw: Any, username: str, client_id: str, mountpoint: str) -> PublishAcl | None:
    if not isinstance(raw, dict):
        return None
    words = _pattern(raw, username, client_id, mountpoint)
    if words is None:
        return None
    size = raw.get("max_payload_size", MAX_PAYLOAD_SIZE)
    retain = raw.get("allowed_retain", True)
    mods = raw.get("modifiers")
    if mods is not None and not (isinstance(mods, dict) and set(mods) <= PUBLISH_MODIFIERS):
        log.error("vmq_diversity: can't validate modifiers %r for publish ACL", mods)
        mods = None
    return PublishAcl(words, _qos(raw),
                      int(size) if isinstance(size, int | float) and 0 <= size <= MAX_PAYLOAD_SIZE
                      else MAX_PAYLOAD_SIZE,
                      retain if isinstance(retain, bool) else True, mods or None)


def _subscribe_acl(raw: Any, username: str, client_id: str, mountpoint: str) -> SubscribeAcl | None:
    if not isinstance(raw, dict):
        return None
    words = _pattern(raw, username, client_id, mountpoint)
    if words is None:
        return None
    mods = raw.get("modifiers")
    # VerneMQ's form: [[filter, qos]]; one filter replaces the subscribed one.
    if mods is not None:
        first = mods[0] if isinstance(mods, list) and len(mods) == 1 else None
        if (isinstance(first, list) and len(first) == 2 and isinstance(first[0], str)
                and valid_filter(first[0]) and first[1] in (0, 1, 2)):
            mods = (first[0], int(first[1]))
        else:
            log.error("vmq_diversity: can't validate modifiers %r for subscribe ACL", mods)
            mods = None
    return SubscribeAcl(words, _qos(raw), mods)
