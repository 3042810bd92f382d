"""vmqpy.mqtt.topic: validation, matching (spec 4.7) and $share parsing; reason code helpers."""

from __future__ import annotations

import pytest

from vmqpy.mqtt import reasons
from vmqpy.mqtt.topic import matches, parse_shared, valid_filter, valid_topic_name, words


@pytest.mark.parametrize("name,ok", [
    ("a", True), ("a/b/c", True), ("/", True), ("a//b", True), ("$SYS/broker", True), (" ", True),
    ("", False), ("a/+", False), ("#", False), ("a/b#", False), ("a\x00b", False), ("x" * 65536, False),
])
def test_valid_topic_name(name, ok):
    assert valid_topic_name(name) is ok


@pytest.mark.parametrize("f,ok", [
    ("#", True), ("+", True), ("a/#", True), ("+/+", True), ("a/+/b", True), ("/+", True), ("+/#", True),
    ("$SYS/#", True), ("a//b", True),
    ("", False), ("a#", False), ("a/#/b", False), ("#/a", False), ("a/b+", False), ("+a/b", False),
    ("a/++", False), ("##", False), ("a\x00", False),
])
def test_valid_filter(f, ok):
    assert valid_filter(f) is ok


@pytest.mark.parametrize("f,topic,ok", [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/+", "a", False),
    ("a/+", "a/", True),  # '+' matches an empty level
    ("+/+", "/x", True),
    ("/+", "/x", True),
    ("+", "/x", False),
    ("a/#", "a", True),  # '#' includes the parent level
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("a/+/c/#", "a/b/c", True),
    ("a/+/c/#", "a/b/d/e", False),
    ("A/b", "a/b", False),  # case sensitive
    ("#", "$SYS/x", False),
    ("+/x", "$SYS/x", False),
    ("+", "$x", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/+", "$SYS/x", True),
    ("$SYS/x", "$SYS/x", True),
    ("a/b/c", "a/b", False),
    ("a/b", "a/b/c", False),
])
def test_matches(f, topic, ok):
    assert matches(f, topic) is ok


def test_words():
    assert words("a//b/") == ["a", "", "b", ""]
    assert words("$SYS/#") == ["$SYS", "#"]


@pytest.mark.parametrize("f,want", [
    ("$share/g/a/b", ("g", "a/b")),
    ("$share/group-1/#", ("group-1", "#")),
    ("$share/g/+/x/#", ("g", "+/x/#")),
    ("$share/g//", ("g", "/")),
    ("a/b", None),
    ("$SYS/x", None),
    ("$sharex/g/a", None),
    ("share/g/a", None),
])
def test_parse_shared(f, want):
    assert parse_shared(f) == want


@pytest.mark.parametrize("f", ["$share/gr+p/x", "$share/g#/x", "$share/g", "$share/g/", "$share//x",
                               "$share/", "$share/g/a#"])
def test_parse_shared_malformed(f):
    with pytest.raises(ValueError):
        parse_shared(f)


def test_reason_names_and_v3_mapping():
    assert reasons.name(reasons.PROTOCOL_ERROR) == "Protocol Error"
    assert reasons.name(reasons.SESSION_TAKEN_OVER) == "Session taken over"
    assert "0x7F" in reasons.name(0x7F)
    assert reasons.connack_v3(reasons.SUCCESS) == reasons.ACCEPTED
    assert reasons.connack_v3(reasons.UNSUPPORTED_PROTOCOL_VERSION) == reasons.UNACCEPTABLE_PROTOCOL == 1
    assert reasons.connack_v3(reasons.CLIENT_IDENTIFIER_NOT_VALID) == reasons.IDENTIFIER_REJECTED == 2
    assert reasons.connack_v3(reasons.SERVER_BUSY) == reasons.SERVER_UNAVAILABLE_V3 == 3
    assert reasons.connack_v3(reasons.BAD_USERNAME_OR_PASSWORD) == reasons.BAD_CREDENTIALS == 4
    assert reasons.connack_v3(reasons.NOT_AUTHORIZED) == reasons.NOT_AUTHORIZED_V3 == 5
