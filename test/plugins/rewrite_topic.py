"""Test plugin: allows every publish and rewrites its topic under a prefix."""

from typing import Any


class RewriteTopic:
    def __init__(self, prefix: str, ctx: object) -> None:
        self.prefix = prefix
        self.ctx = ctx
        self.stopped = False

    def auth_on_publish(self, username, subscriber_id, qos, topic, payload, is_retain) -> Any:
        return "ok", {"topic": f"{self.prefix}/{topic}"}

    def stop(self) -> None:
        self.stopped = True


def start(settings: dict, ctx: object) -> RewriteTopic:
    return RewriteTopic(settings.get("prefix", "rewritten"), ctx)
