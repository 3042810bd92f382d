"""MQTT 5 topic aliases, both directions, for one network connection (spec 3.3.2.3.4).

Aliases live as long as the connection: a new connection starts empty tables.
"""

from __future__ import annotations

from vmqpy.broker.errors import Disconnect
from vmqpy.mqtt import reasons as R


class InboundAliases:
    """Aliases the client sets up towards us, up to topic_alias_max_client."""

    __slots__ = ("limit", "topics")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.topics: dict[int, str] = {}

    def resolve(self, topic: str, props: dict) -> tuple[str, dict | None]:
        """The real topic of a PUBLISH and its properties without topic_alias."""
        alias = props.get("topic_alias")
        if alias is None:
            return topic, props
        if not 0 < alias <= self.limit:
            raise Disconnect(R.TOPIC_ALIAS_INVALID, f"topic alias {alias} is not in 1..{self.limit}")
        if topic:
            self.topics[alias] = topic
        else:
            topic = self.topics.get(alias, "")
            if not topic:
                raise Disconnect(R.PROTOCOL_ERROR, f"topic alias {alias} was never set")
        rest = {k: v for k, v in props.items() if k != "topic_alias"}
        return topic, rest or None


class OutboundAliases:
    """Aliases we assign to topics we send, up to the smaller of both sides' maximum.

    First come, first served: once every alias is taken, other topics go out
    in full. That keeps the mapping stable, so no PUBLISH ever depends on an
    alias that a later one redefined.
    """

    __slots__ = ("limit", "by_topic")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_topic: dict[str, int] = {}

    def lookup(self, topic: str) -> tuple[int, bool]:
        """(alias, already known to the client); alias 0 means send the topic without one."""
        alias = self.by_topic.get(topic)
        if alias is not None:
            return alias, True
        if len(self.by_topic) < self.limit:
            return len(self.by_topic) + 1, False
        return 0, False

    def commit(self, topic: str, alias: int) -> None:
        """Record an alias once the PUBLISH that defines it is actually sent."""
        self.by_topic[topic] = alias
