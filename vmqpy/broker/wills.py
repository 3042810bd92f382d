"""Last wills: published when a connection ends abnormally, at once or after the v5 Will Delay.

A delayed will waits in `pending` under its subscriber id. A new connection
to the same session within the delay cancels it [MQTT-3.1.3-9]; one with
Clean Start ends the old session, which publishes the will now. A session
that expires first publishes it then: the delay is capped by the expiry.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import gevent

from vmqpy.broker.message import Msg
from vmqpy.mqtt import packets as P

if TYPE_CHECKING:
    from vmqpy.broker.node import Node
    from vmqpy.broker.session import Session

SubscriberId = tuple[str, str]


class Wills:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.pending: dict[SubscriberId, tuple[gevent.Greenlet, Session, Msg]] = {}

    def publish(self, session: Session, will: P.Will) -> None:
        """The connection of `session` ended without a clean DISCONNECT."""
        props = will.properties
        delay = 0
        if props:
            delay = min(props.get("will_delay_interval", 0), self.node.config["max_last_will_delay"])
            props = {k: v for k, v in props.items() if k != "will_delay_interval"} or None
        msg = Msg(will.topic, will.payload, will.qos, will.retain, props, session.mountpoint,
                  sender=session.sid)
        if session.expiry is not None:
            delay = min(delay, session.expiry)
        if delay:
            queue = self.node.registry.queues.get(session.sid)
            if queue is not None and session not in queue.sessions:
                # Taken over before this close was seen: a resumed session cancels
                # the will [MQTT-3.1.3-9]; a Clean Start ended the session, so send it now.
                if session.session_ended:
                    self._send(session, msg)
                return
            timer = gevent.spawn_later(delay, self._fire, session.sid)
            self.pending[session.sid] = (timer, session, msg)
        else:
            self._send(session, msg)

    def resumed(self, sid: SubscriberId, clean_start: bool) -> None:
        """A new connection for `sid`: cancel its delayed will, or send it now if the session ends."""
        entry = self.pending.pop(sid, None)
        if entry is not None:
            timer, session, msg = entry
            timer.kill(block=False)
            if clean_start:
                self._send(session, msg)

    def _fire(self, sid: SubscriberId) -> None:
        entry = self.pending.pop(sid, None)
        if entry is not None:
            self._send(entry[1], entry[2])

    def _send(self, session: Session, msg: Msg) -> None:
        props = msg.properties
        if props and "message_expiry_interval" in props:
            msg.expiry = time.time() + props["message_expiry_interval"]
        node = self.node
        if node.authorize_publish(session, msg):
            node.publish(msg)
            node.msg_store.flush()
