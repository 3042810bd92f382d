"""vmq_acl: VerneMQ's ACL file format, wildcard coverage and substitutions."""

import logging

import pytest

from vmqpy.plugins import vmq_acl
from vmqpy.plugins.vmq_acl import AclSyntaxError, parse

SID = ("", "my-client-id")


def acl_plugin(tmp_path, text, interval=0):
    f = tmp_path / "vmq.acl"
    f.write_text(text)
    return vmq_acl.start({"acl_file": str(f), "acl_reload_interval": interval}, None)


def can_pub(p, user, topic, sid=SID):
    return p.auth_on_publish(user, sid, 1, topic, b"", False) == "ok"


def can_sub(p, user, *filters, sid=SID):
    return p.auth_on_subscribe(user, sid, [(f, 0) for f in filters]) == "ok"


# VerneMQ's own test file (vmq_acl_SUITE simple_acl_list), answers included.
VERNEMQ_SUITE = """\
# simple comment
topic read a/b/c
# other comment
topic write a/b/c
topic write x/y/z

#
# ACL for user 'test'
user test


##
topic x/y/z/#
# some patterns
pattern read %m/%u/%c
pattern write %m/%u/%c"""


def test_vernemq_suite(tmp_path):
    p = acl_plugin(tmp_path, VERNEMQ_SUITE)
    assert can_sub(p, "test", "a/b/c", "x/y/z/#", "/test/my-client-id")
    assert not can_sub(p, "invalid-user", "a/b/c", "x/y/z/#", "/test/my-client-id")
    assert can_pub(p, "test", "a/b/c")
    assert can_pub(p, "test", "x/y/z/blabla")
    assert can_pub(p, "test", "/test/my-client-id")
    assert not can_pub(p, "invalid-user", "x/y/z/blabla")
    assert not can_pub(p, "invalid-user", "/test/my-client-id")


def test_docs_example_read_write_and_sections(tmp_path):
    p = acl_plugin(tmp_path, "topic bar\ntopic write foo\ntopic read open_to_all\n"
                             "user john\ntopic foo\ntopic read baz\ntopic write open_to_all\n"
                             "user ro\ntopic readwrite both\n")
    assert can_pub(p, None, "bar") and can_sub(p, None, "bar")
    assert can_pub(p, None, "foo") and not can_sub(p, None, "foo")
    assert can_sub(p, None, "open_to_all") and not can_pub(p, None, "open_to_all")
    assert can_sub(p, "john", "foo") and can_sub(p, "john", "baz") and not can_pub(p, "john", "baz")
    assert can_pub(p, "john", "open_to_all")
    # as in VerneMQ's vmq_acl, the section above the first `user` applies to everyone
    assert can_pub(p, "john", "bar") and can_pub(p, "ro", "bar")
    assert can_pub(p, "ro", "both") and can_sub(p, "ro", "both")
    assert not can_pub(p, None, "baz") and not can_pub(p, "ro", "baz")


@pytest.mark.parametrize("rule, filt, allowed", [
    ("a/#", "a/+/c", True),
    ("a/#", "a/#", True),
    ("a/#", "a", True),
    ("a/+", "a/#", False),
    ("a/+", "a/+", True),
    ("a/+", "a/b/c", False),
    ("a/+/c", "a/+/c", True),
    ("a/b/c", "a/+/c", False),
    ("a/+/#", "a/#", False),
    ("#", "#", True),
    ("+", "#", False),
    ("+/+", "+/#", False),
    ("a", "a/#", False),
    ("$share/g/a/#", "$share/g/a/b", True),
    ("a/#", "$share/g/a/b", False),
])
def test_subscribe_filter_coverage(tmp_path, rule, filt, allowed):
    assert can_sub(acl_plugin(tmp_path, f"topic read {rule}\n"), "u", filt) is allowed


def test_subscribe_needs_every_filter(tmp_path):
    p = acl_plugin(tmp_path, "topic read a/#\n")
    assert can_sub(p, "u", "a/1", "a/2")
    assert p.auth_on_subscribe("u", SID, [("a/1", 0), ("b", 1)]) == "next"
    assert p.auth_on_subscribe_m5("u", SID, [("a/1", 0)], {}) == "ok"


def test_publish_wildcard_characters_are_literal(tmp_path):
    p = acl_plugin(tmp_path, "topic write a/b\ntopic write c/+\n")
    assert not can_pub(p, "u", "a/+") and not can_pub(p, "u", "a/#") and not can_pub(p, "u", "#")
    assert can_pub(p, "u", "c/#")  # one literal level under c/
    assert not can_pub(p, "u", "c/x/y")
    assert p.auth_on_publish_m5("u", SID, 0, "a/b", b"", False, {}) == "ok"


def test_pattern_substitution(tmp_path):
    p = acl_plugin(tmp_path, "user bob\ntopic read private\npattern write dev/%c/%u/#\n"
                             "pattern read %m/in\n")
    assert can_pub(p, "alice", "dev/c1/alice/temp", sid=("", "c1"))
    assert not can_pub(p, "alice", "dev/c2/alice/temp", sid=("", "c1"))
    assert not can_pub(p, "alice", "dev/c1/bob/temp", sid=("", "c1"))
    assert not can_pub(p, None, "dev/c1/None/x", sid=("", "c1"))  # anonymous has no %u
    assert can_sub(p, "alice", "mp1/in", sid=("mp1", "c1"))
    assert not can_sub(p, "alice", "mp2/in", sid=("mp1", "c1"))
    assert can_sub(p, None, "/in", sid=("", "c1"))  # default mountpoint "" is a level
    assert not can_sub(p, "alice", "private")


@pytest.mark.parametrize("user, client_id, topic", [
    ("+", "c", "dev/c/victim/x"),
    ("#", "c", "dev/c/victim/x"),
    ("a/b", "c", "dev/c/a/b/x"),
    ("u", "+", "dev/victim/u/x"),
    ("u", "#", "dev/victim/u/x"),
    ("u", "", "dev//u/x"),
    ("", "c", "dev/c//x"),
])
def test_hostile_substitutions_never_widen(tmp_path, user, client_id, topic):
    p = acl_plugin(tmp_path, "pattern dev/%c/%u/#\npattern %c/#\n")
    assert not can_pub(p, user, topic, sid=("", client_id))
    assert not can_sub(p, user, topic, sid=("", client_id))
    assert not can_sub(p, user, "dev/+/+/#", sid=("", client_id))


def test_dollar_values_do_not_reach_dollar_trees(tmp_path):
    p = acl_plugin(tmp_path, "pattern %c/#\npattern users/%u\n")
    assert not can_pub(p, "u", "$SYS/x", sid=("", "$SYS"))
    assert can_pub(p, "$u", "users/$u")  # below the first level '$' is harmless
    assert can_pub(p, "u", "ok/x", sid=("", "ok"))


def test_whitespace_crlf_and_utf8(tmp_path):
    p = acl_plugin(tmp_path, "topic read  a/b/c \r\n\ttopic write\tv/w x/y\r\n   \r\n"
                             "user    test   \ntopic  x/y/z/# \ntopic машина/скорость\n")
    assert can_sub(p, None, "a/b/c") and can_pub(p, None, "v/w x/y")
    assert can_pub(p, "test", "x/y/z/1") and can_sub(p, "test", "машина/скорость")


@pytest.mark.parametrize("line", ["topics a", "user", "topic", "topic read a/#/b", "topic a+", "deny a"])
def test_parse_errors_name_the_line(line):
    with pytest.raises(AclSyntaxError, match=r"<acl>:2:"):
        parse(f"topic ok\n{line}\n")


def test_reload_keeps_old_rules_on_bad_file(tmp_path, caplog):
    p = acl_plugin(tmp_path, "topic a\n")
    f = tmp_path / "vmq.acl"
    f.write_text("topic a\ntopic b\n")
    assert p.reloader.check() and can_pub(p, "u", "b")
    with caplog.at_level(logging.ERROR):
        f.write_text("topic c\ntopci d\n")
        assert not p.reloader.check()
    assert "vmq.acl:2" in caplog.text and "topci d" in caplog.text
    assert can_pub(p, "u", "b") and not can_pub(p, "u", "c")


def test_bad_file_at_start_and_missing_file(tmp_path):
    with pytest.raises(AclSyntaxError):
        acl_plugin(tmp_path, "garbage\n")
    missing = str(tmp_path / "none.acl")
    with pytest.raises(FileNotFoundError, match="plugins.vmq_acl = off"):  # it would deny everything
        vmq_acl.start({"acl_file": missing, "acl_reload_interval": 0}, None)
    assert vmq_acl.check({"acl_file": missing}) == (
        "vmq_acl.acl_file", f"the ACL file {missing} does not exist: create it (an empty file allows nothing), "
                    "or set plugins.vmq_acl = off")
