"""Shared subscriptions ($share/group/filter): one member of a group gets each message.

On a single node the three shared_subscription_policy values pick alike
(every member is local): a random online member, an offline one only when no
member is online. A member that goes offline hands its undelivered and
unacknowledged shared messages to the other online members of the group (in a
cluster, on any node: cluster/shared.py, which also picks between nodes).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from vmqpy.broker.message import Msg

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.broker.queue import Out, Queue
    from vmqpy.broker.router import SubscriberId, Subscription


class SharedSubscriptions:
    def __init__(self, node: Node) -> None:
        self.node = node

    def deliver(self, msg: Msg, group: str, members: dict[SubscriberId, Subscription]) -> int:
        """Enqueue `msg` for one member of `group`; the number of deliveries (0 or 1)."""
        registry = self.node.registry
        queues = registry.queues
        online = [sid for sid in members if (q := queues.get(sid)) is not None and q.online]
        sid = random.choice(online or list(members))
        queue = queues.get(sid) or registry.queue_for(sid)
        if queue is None:
            return 0
        self._enqueue(queue, msg, members[sid], group)
        return 1

    def redistribute(self, leaving: Queue, outs: list[Out]) -> list[Out]:
        """Give each shared message of `leaving` to another online member, here or (in a cluster)
        on another node; returns those none took."""
        queues = self.node.registry.queues
        cluster = self.node.cluster
        kept = []
        for out in outs:
            members = self._members(out.msg, out.group)
            online = [sid for sid in members
                      if sid != leaving.sid and (q := queues.get(sid)) is not None and q.online]
            if not online:
                if cluster is None or not cluster.shared.forward(out.msg, out.group):
                    kept.append(out)
                continue
            sid = random.choice(online)
            self._enqueue(queues[sid], out.msg, members[sid], out.group)
        return kept

    def _members(self, msg: Msg, group: str) -> dict[SubscriberId, Subscription]:
        # A group may hold several filters that match the topic: merge their members.
        members: dict = {}
        for name, subs in self.node.router.match(msg.mountpoint, msg.topic)[1]:
            if name == group:
                members.update(subs)
        return members

    @staticmethod
    def _enqueue(queue: Queue, msg: Msg, sub: Subscription, group: str) -> None:
        queue.enqueue(msg, min(msg.qos, sub.qos), False, (sub.sub_id,) if sub.sub_id else (), group)
