"""Test plugin: maps subscription filters under `alias/` to `real/` and records unsubscribes.

auth_on_subscribe and on_unsubscribe rewrite `alias/...` filters to `real/...`;
on_topic_unsubscribed appends one line per call to the file named by the
`alias_subs.events` setting (on_delivery_complete to that name + ".delivered",
on_config_change to + ".config"), so a test can see what the broker reported.
"""

from __future__ import annotations

from typing import Any


def _real(filt: str) -> str:
    return "real/" + filt[len("alias/"):] if filt.startswith("alias/") else filt


class AliasSubs:
    def __init__(self, events: str) -> None:
        self.events = events

    def auth_on_subscribe(self, username, subscriber_id, topics) -> Any:
        return "ok", {"topics": [(_real(f), qos) for f, qos in topics]}

    def on_unsubscribe(self, username, subscriber_id, topics) -> Any:
        return "ok", {"topics": [_real(f) for f in topics]}

    def on_delivery_complete(self, username, subscriber_id, qos, topic, payload, is_retain) -> None:
        with open(self.events + ".delivered", "a") as f:
            f.write(f"{subscriber_id[1]} {qos} {topic} {payload.decode()}\n")

    def on_config_change(self, changes: dict) -> None:
        with open(self.events + ".config", "a") as f:
            f.write(" ".join(f"{key}={value!r}" for key, value in sorted(changes.items())) + "\n")

    def on_topic_unsubscribed(self, subscriber_id, topics) -> None:
        with open(self.events, "a") as f:
            f.write(f"{subscriber_id[1]} {topics if topics == 'all_topics' else ','.join(topics)}\n")


def start(settings: dict, ctx: object) -> AliasSubs:
    return AliasSubs(settings["events"])
