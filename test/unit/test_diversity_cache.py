"""vmq_diversity's auth cache: matching, the security rule of %u/%c/%m, pending and active entries."""

from __future__ import annotations

from vmqpy.plugins.vmq_diversity.cache import AuthCache

ACL = [{"pattern": "dev/%u/#"}, {"pattern": "up/%c", "max_qos": 1, "allowed_retain": False}]


def test_publish_and_subscribe_decisions():
    cache = AuthCache()
    cache.insert("", "c1", "alice", ACL, ACL)
    assert cache.match_publish("", "c1", 2, "dev/alice/x", b"", True) is True
    assert cache.match_publish("", "c1", 1, "up/c1", b"", False) is True
    assert cache.match_publish("", "c1", 2, "up/c1", b"", False) is False
    assert cache.match_publish("", "c1", 1, "up/c1", b"", True) is False
    assert cache.match_publish("", "c1", 0, "dev/bob/x", b"", False) is False
    assert cache.match_subscribe("", "c1", "dev/alice/+", 2) is True
    assert cache.match_subscribe("", "c1", "dev/+/x", 0) is False
    assert cache.match_publish("", "other", 0, "dev/alice/x", b"", False) is None  # no entry


def test_repeated_publishes_give_the_same_answers_from_the_memo():
    cache = AuthCache()
    cache.insert("", "c1", "alice", ACL, None)
    first = [cache.match_publish("", "c1", q, t, b"p", r) for q in (0, 2) for t in ("dev/alice/a", "up/c1")
             for r in (False, True)]
    assert cache.entry("", "c1").memo  # remembered
    again = [cache.match_publish("", "c1", q, t, b"p", r) for q in (0, 2) for t in ("dev/alice/a", "up/c1")
             for r in (False, True)]
    assert first == again == [True, True, True, False, True, True, False, False]


def test_a_payload_size_limit_is_checked_every_time():
    cache = AuthCache()
    cache.insert("", "c1", "alice", [{"pattern": "s/#", "max_payload_size": 3}], None)
    assert cache.match_publish("", "c1", 0, "s/a", b"123", False) is True
    assert cache.match_publish("", "c1", 0, "s/a", b"1234", False) is False
    assert not cache.entry("", "c1").memo


def test_values_that_would_widen_a_pattern_drop_it():
    cache = AuthCache()
    for user in ("+", "#", "a/b", ""):
        cache.insert("", f"c-{user}", user, [{"pattern": "dev/%u/#"}], [{"pattern": "dev/%u/#"}])
        assert cache.match_subscribe("", f"c-{user}", "dev/+/#", 0) is False
        assert cache.match_publish("", f"c-{user}", 0, "dev/x/y", b"", False) is False
    cache.insert("", "$SYS", "u", None, [{"pattern": "%c/#"}])
    assert cache.match_subscribe("", "$SYS", "$SYS/#", 0) is False


def test_the_registered_session_owns_the_entry():
    cache = AuthCache()
    cache.insert("", "c1", "alice", [{"pattern": "old/#"}], None)
    cache.activate("", "c1")
    cache.insert("", "c1", "alice", [{"pattern": "new/#"}], None)  # the client reconnects
    cache.clear("", "c1")  # ... while its old session goes offline
    cache.activate("", "c1")  # the new session registers
    assert cache.match_publish("", "c1", 0, "new/x", b"", False) is True
    cache.activate("", "c1")  # taken over by a session another plugin let in: no entry of its own
    assert cache.match_publish("", "c1", 0, "new/x", b"", False) is None
