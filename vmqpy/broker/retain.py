"""Retained messages: a word trie per mountpoint, persisted in the metadata store.

The trie answers "which retained messages match this filter" without scanning
every retained topic; the metadata store ('retain' prefix) makes them survive
a restart (a cleared message is deleted there, so it stays cleared).
"""

from __future__ import annotations

import time

from vmqpy.broker.message import Msg

PREFIX = "retain"


class _Node:
    __slots__ = ("children", "msg")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.msg: Msg | None = None


def to_record(msg: Msg) -> dict:
    """What is stored (and replicated) of a retained message."""
    return {"payload": msg.payload, "qos": msg.qos, "properties": msg.properties, "expiry": msg.expiry}


class RetainStore:
    def __init__(self, metadata) -> None:
        self._meta = metadata
        self._roots: dict[str, _Node] = {}
        self.count = 0
        # In a cluster (or with workers): (msg) -> set or clear it everywhere; the trie then follows
        # the replicated metadata through `apply`, and nothing is stored under PREFIX here.
        self.replicate = None
        for (mountpoint, topic), rec in list(metadata.fold(PREFIX)):
            self.apply(mountpoint, topic, rec)

    def put(self, msg: Msg) -> None:
        """Store `msg` as the retained message of its topic; an empty payload clears it."""
        if self.replicate is not None:
            self.replicate(msg)
        elif msg.payload:
            self._insert(Msg(msg.topic, msg.payload, msg.qos, True, msg.properties, msg.mountpoint, msg.expiry))
            self._meta.put(PREFIX, (msg.mountpoint, msg.topic), to_record(msg))
        elif self._delete(msg.mountpoint, msg.topic):
            self._meta.delete(PREFIX, (msg.mountpoint, msg.topic))

    def apply(self, mountpoint: str, topic: str, rec: dict | None) -> None:
        """Make the trie hold `rec` (a stored record; None: nothing) for the topic."""
        if rec is None:
            self._delete(mountpoint, topic)
        else:
            self._insert(Msg(topic, rec["payload"], rec["qos"], True, rec["properties"], mountpoint,
                             rec["expiry"]))

    def _insert(self, msg: Msg) -> None:
        node = self._roots.setdefault(msg.mountpoint, _Node())
        for word in msg.topic.split("/"):
            node = node.children.setdefault(word, _Node())
        self.count += node.msg is None
        node.msg = msg

    def _delete(self, mountpoint: str, topic: str) -> bool:
        node = self._roots.get(mountpoint)
        path = []
        for word in topic.split("/"):
            if node is None:
                return False
            path.append((node, word))
            node = node.children.get(word)
        if node is None or node.msg is None:
            return False
        node.msg = None
        self.count -= 1
        for parent, word in reversed(path):
            child = parent.children[word]
            if child.msg is not None or child.children:
                break
            del parent.children[word]
        return True

    def match(self, mountpoint: str, filt: str) -> list[Msg]:
        """Retained messages whose topic matches `filt`; expired ones are dropped."""
        root = self._roots.get(mountpoint)
        if root is None:
            return []
        out: list[Msg] = []
        self._walk(root, filt.split("/"), 0, out)
        now = time.time()
        live = [m for m in out if not m.expired(now)]
        for m in out:
            if m.expired(now):
                self.put(Msg(m.topic, b"", mountpoint=mountpoint))
        return live

    def _walk(self, node: _Node, words: list[str], i: int, out: list[Msg]) -> None:
        if i == len(words):
            if node.msg is not None:
                out.append(node.msg)
            return
        word = words[i]
        if word == "#":
            self._all(node, out, top=(i == 0))
        elif word == "+":
            for name, child in node.children.items():
                if not (i == 0 and name.startswith("$")):
                    self._walk(child, words, i + 1, out)
        else:
            child = node.children.get(word)
            if child is not None:
                self._walk(child, words, i + 1, out)

    def _all(self, node: _Node, out: list[Msg], top: bool) -> None:
        # '#' also matches the parent level itself ("a/#" matches "a").
        if node.msg is not None and not top:
            out.append(node.msg)
        for name, child in node.children.items():
            if top and name.startswith("$"):
                continue
            self._all(child, out, False)

    def delete_expired(self) -> int:
        """Clear every retained message whose MQTT 5 expiry has passed; how many there were."""
        now = time.time()
        expired = [m for m in self.all() if m.expired(now)]
        for m in expired:
            self.put(Msg(m.topic, b"", mountpoint=m.mountpoint))
        return len(expired)

    def all(self) -> list[Msg]:
        out: list[Msg] = []
        for root in self._roots.values():
            self._all(root, out, False)
        return out
