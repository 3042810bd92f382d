"""Topic names and filters: validation, matching and `$share/group/filter` parsing (spec 4.7, 4.8.2)."""

from __future__ import annotations

SHARE_PREFIX = "$share/"
_MAX_BYTES = 65535  # a UTF-8 string on the wire has a 16-bit length


def words(s: str) -> list[str]:
    """The topic levels of a name or filter ('a//b' has an empty middle level)."""
    return s.split("/")


def _valid_string(s: str) -> bool:
    return bool(s) and "\x00" not in s and len(s.encode("utf-8", "surrogatepass")) <= _MAX_BYTES


def valid_topic_name(s: str) -> bool:
    """A topic a PUBLISH may carry: non-empty, no wildcards, no NUL."""
    return _valid_string(s) and "+" not in s and "#" not in s


def valid_filter(s: str) -> bool:
    """A subscription filter: '#' only as the whole last level, '+' only as a whole level."""
    if not _valid_string(s):
        return False
    if "+" not in s and "#" not in s:
        return True
    levels = s.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            return False
        if "+" in level and level != "+":
            return False
    return True


def parse_shared(f: str) -> tuple[str, str] | None:
    """(group, filter) for '$share/group/filter', None for a plain filter.

    Raises ValueError for a malformed share: empty group or one holding a
    wildcard, missing or invalid filter.
    """
    if not f.startswith(SHARE_PREFIX):
        return None
    group, sep, inner = f[len(SHARE_PREFIX):].partition("/")
    if not sep or not group or "+" in group or "#" in group:
        raise ValueError(f"malformed shared subscription {f!r}: bad or missing share name")
    if not valid_filter(inner):
        raise ValueError(f"malformed shared subscription {f!r}: bad or missing topic filter")
    return group, inner


def matches(filter: str, topic: str) -> bool:
    """Whether a topic name matches a filter.

    A filter that starts with a wildcard does not match a topic starting with
    '$' (spec 4.7.2), so '#' never delivers $SYS.
    """
    if topic[:1] == "$" and filter[:1] in ("+", "#"):
        return False
    if filter == topic:
        return True
    fl = filter.split("/")
    tl = topic.split("/")
    ntl = len(tl)
    for i, f in enumerate(fl):
        if f == "#":
            return True  # also matches the parent level: 'a/#' matches 'a'
        if i >= ntl or (f != "+" and f != tl[i]):
            return False
    return len(fl) == ntl
