"""Hook chains: ok/next/error/modifiers, raising and misbehaving hooks."""

import pytest

from vmqpy.plugins.hooks import ALL_HOOKS, ALL_TILL_OK_HOOKS, ONLY_HOOKS, Hooks


def chain(*answers):
    hooks = Hooks()
    for i, answer in enumerate(answers):
        hooks.register(f"p{i}", "auth_on_publish", answer if callable(answer) else (lambda *_, a=answer: a))
    return hooks


def boom(*_):
    raise RuntimeError("plugin bug")


def test_chain_kinds_follow_vernemq():
    assert {"on_deliver", "on_deliver_m5", "on_unsubscribe", "on_unsubscribe_m5"} <= set(ALL_TILL_OK_HOOKS)
    assert not set(ALL_TILL_OK_HOOKS) & set(ALL_HOOKS)
    assert not set(ONLY_HOOKS) & (set(ALL_HOOKS) | set(ALL_TILL_OK_HOOKS))


def test_unknown_hook_is_refused():
    with pytest.raises(ValueError):
        Hooks().register("p", "auth_on_everything", lambda: "ok")


@pytest.mark.parametrize("answers, expected", [
    ((), ("next", None)),
    (("next", "next"), ("next", None)),
    ((None, "ok"), ("ok", {})),
    (("next", ("ok", {"topic": "b"}), "ok"), ("ok", {"topic": "b"})),
    ((("ok", None),), ("ok", {})),
    ((("error", "not_authorized"), "ok"), ("error", "not_authorized")),
    (("ok", ("error", "x")), ("ok", {})),
])
def test_all_till_ok_first_answer_wins(answers, expected):
    assert chain(*answers).all_till_ok("auth_on_publish") == expected


def test_modifiers_are_a_dict():
    topics = [("a/b", 1), ("a/b", 128)]
    assert chain(("ok", {"topics": topics})).all_till_ok("auth_on_publish") == ("ok", {"topics": topics})
    # VerneMQ's bare-list / bare-payload shorthands are refused, never applied half-understood
    assert chain(("ok", topics), "ok").all_till_ok("auth_on_publish") == ("error", ("ok", topics))
    assert chain(("ok", b"payload")).all_till_ok("auth_on_publish")[0] == "error"


def test_raising_hook_is_next_and_never_grants():
    assert chain(boom).all_till_ok("auth_on_publish") == ("next", None)
    assert chain(boom, ("error", "denied")).all_till_ok("auth_on_publish") == ("error", "denied")


def test_unexpected_answer_stops_the_chain_as_error():
    assert chain(True, "ok").all_till_ok("auth_on_publish") == ("error", True)
    assert chain(("ok", 1, 2), "ok").all_till_ok("auth_on_publish")[0] == "error"


def test_hooks_receive_arguments():
    seen = []
    hooks = Hooks()
    hooks.register("p", "on_publish", lambda *a: seen.append(a))
    hooks.all("on_publish", "user", ("", "c"), 1, "t", b"x", False)
    assert seen == [("user", ("", "c"), 1, "t", b"x", False)]


def test_all_runs_every_hook_despite_errors():
    seen = []
    hooks = Hooks()
    hooks.register("a", "on_client_gone", boom)
    hooks.register("b", "on_client_gone", seen.append)
    hooks.all("on_client_gone", ("", "c"))
    assert seen == [("", "c")]


def test_only_runs_the_first():
    hooks = Hooks()
    assert hooks.only("msg_store_read", 1) == "next"
    hooks.register("a", "msg_store_read", lambda k: ("a", k))
    hooks.register("b", "msg_store_read", lambda k: ("b", k))
    assert hooks.only("msg_store_read", 1) == ("a", 1)


def test_unregister_and_active():
    hooks = Hooks()
    hooks.register("a", "auth_on_publish", lambda *_: "next")
    hooks.register("b", "auth_on_publish", lambda *_: "ok")
    hooks.register("b", "on_deliver", lambda *_: "ok")
    assert hooks.owners("auth_on_publish") == ["a", "b"]
    hooks.unregister("b")
    assert hooks.owners("auth_on_publish") == ["a"]
    assert hooks.active("auth_on_publish") and not hooks.active("on_deliver")
    assert hooks.all_till_ok("auth_on_publish") == ("next", None)


def test_may_block_unless_every_owner_never_blocks():
    hooks = Hooks()
    assert not hooks.may_block
    hooks.register("acl", "auth_on_publish", lambda *_: "ok", never_blocks=True)
    assert not hooks.may_block and "auth_on_publish" in hooks.names
    hooks.register("web", "on_deliver", lambda *_: "ok")  # the default: it may wait on I/O
    assert hooks.may_block
    hooks.unregister("web")
    assert not hooks.may_block
    hooks.unregister("acl")
    assert not hooks.may_block and not hooks.names


def test_register_during_a_run_does_not_change_that_run():
    hooks = Hooks()

    def first(*_):
        hooks.register("late", "auth_on_publish", lambda *_: "ok")
        return "next"

    hooks.register("a", "auth_on_publish", first)
    assert hooks.all_till_ok("auth_on_publish") == ("next", None)
    assert hooks.all_till_ok("auth_on_publish") == ("ok", {})
