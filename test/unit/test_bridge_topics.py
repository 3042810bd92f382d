"""vmq_bridge topic lines (VerneMQ's and mosquitto's syntax) and prefix arithmetic."""

from __future__ import annotations

import pytest

from vmqpy.config_types import BridgeTopic, BridgeTopicSpec
from vmqpy.plugins.vmq_bridge.settings import join, swap


@pytest.mark.parametrize("text, spec", [
    ("a/#", BridgeTopicSpec("a/#", "out", 0, False, "", "")),
    ("a/* in", BridgeTopicSpec("a/#", "in", 0, False, "", "")),
    ("a/+ both 2", BridgeTopicSpec("a/+", "both", 2, False, "", "")),
    ("a/# out 1 retain", BridgeTopicSpec("a/#", "out", 1, True, "", "")),
    ("a/# in 1 local/ remote", BridgeTopicSpec("a/#", "in", 1, False, "local/", "remote")),
    ("a/# both 0 $empty remote/", BridgeTopicSpec("a/#", "both", 0, False, "", "remote/")),
    ('a/# out 1 retain "" r', BridgeTopicSpec("a/#", "out", 1, True, "", "r")),
    ("a 1", BridgeTopicSpec("a", "out", 1, False, "", "")),  # VerneMQ: the direction may be left out
])
def test_topic_lines(text, spec):
    assert BridgeTopic().parse(text, "/") == spec
    assert BridgeTopic().parse(BridgeTopic().fmt(spec), "/") == spec


@pytest.mark.parametrize("text", ["", "a/# out 1 onlyone", "a/# sideways", "a/# in 1 l r extra", "a in 1 l/+ r"])
def test_bad_topic_lines(text):
    with pytest.raises(ValueError):
        BridgeTopic().parse(text, "/")


def test_prefixes_are_topic_levels_with_or_without_the_slash():
    assert join("", "a/b") == "a/b"
    assert join("site1", "a/#") == join("site1/", "a/#") == "site1/a/#"
    assert swap("edge/", "site1", "edge/a/b") == swap("edge", "site1/", "edge/a/b") == "site1/a/b"
    assert swap("", "local", "a") == "local/a"
    assert swap("remote", "", "remote/a") == "a"
