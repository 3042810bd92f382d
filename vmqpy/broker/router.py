"""The subscription trie and the routing decision for one topic.

Filters are stored word by word under their mountpoint. A lookup walks the
trie once and folds every matching subscription of a subscriber into one
delivery (highest QoS, all subscription identifiers), the v3 rule that v5
permits too. Results are cached per (mountpoint, topic) until the trie changes,
so steady traffic on a stable subscription set never walks the trie.
"""

from __future__ import annotations

from dataclasses import dataclass

SubscriberId = tuple[str, str]  # (mountpoint, client_id)


@dataclass(slots=True)
class Subscription:
    """One filter of one subscriber, with its MQTT 5 options."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    sub_id: int | None = None

    def to_dict(self) -> dict:
        return {"qos": self.qos, "no_local": self.no_local, "rap": self.retain_as_published,
                "rh": self.retain_handling, "sub_id": self.sub_id}

    @classmethod
    def from_dict(cls, d: dict) -> Subscription:
        return cls(d["qos"], d["no_local"], d["rap"], d["rh"], d["sub_id"])


@dataclass(slots=True)
class Delivery:
    """What one subscriber gets for one topic, all its matching filters folded."""

    sid: SubscriberId
    qos: int            # highest QoS over the matching filters
    qos_not_local: int  # highest QoS over filters without no_local; -1 if none
    retain_as_published: bool
    sub_ids: tuple[int, ...]


class _Node:
    __slots__ = ("children", "subs", "shared")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subs: dict[SubscriberId, Subscription] = {}
        self.shared: dict[str, dict[SubscriberId, Subscription]] = {}

    def empty(self) -> bool:
        return not (self.children or self.subs or self.shared)


class Router:
    CACHE_MAX = 100_000

    def __init__(self) -> None:
        self._root = _Node()
        # (mountpoint, topic) -> match(); cleared in place, never replaced: Node.publish reads it directly.
        self.cache: dict[tuple[str, str], tuple[list[Delivery], list]] = {}
        self.count = 0

    # -- changes ------------------------------------------------------------
    def add(self, sid: SubscriberId, filt: str, sub: Subscription, group: str | None = None) -> bool:
        """Add or replace a subscription; True if it is new."""
        node = self._root.children.setdefault(sid[0], _Node())
        for word in filt.split("/"):
            nxt = node.children.get(word)
            if nxt is None:
                nxt = node.children[word] = _Node()
            node = nxt
        table = node.shared.setdefault(group, {}) if group is not None else node.subs
        new = sid not in table
        table[sid] = sub
        self.count += new
        self.cache.clear()
        return new

    def remove(self, sid: SubscriberId, filt: str, group: str | None = None) -> bool:
        """Remove a subscription; True if it existed."""
        path = [self._root]
        node = self._root.children.get(sid[0])
        words = filt.split("/")
        for word in words:
            if node is None:
                return False
            path.append(node)
            node = node.children.get(word)
        if node is None:
            return False
        if group is None:
            found = node.subs.pop(sid, None) is not None
        else:
            members = node.shared.get(group, {})
            found = members.pop(sid, None) is not None
            if not members:
                node.shared.pop(group, None)
        if found:
            self.count -= 1
            self.cache.clear()
            self._prune(path, [sid[0], *words], node)
        return found

    def members(self, mountpoint: str, filt: str, group: str) -> dict[SubscriberId, Subscription]:
        """The members of shared group `group` on the plain filter `filt` (empty if none)."""
        node = self._root.children.get(mountpoint)
        for word in filt.split("/"):
            if node is None:
                return {}
            node = node.children.get(word)
        return {} if node is None else node.shared.get(group, {})

    @staticmethod
    def _prune(path: list[_Node], words: list[str], node: _Node) -> None:
        for parent, word in zip(reversed(path), reversed(words), strict=True):
            if not node.empty():
                return
            del parent.children[word]
            node = parent

    # -- lookups ------------------------------------------------------------
    def match(self, mountpoint: str, topic: str) -> tuple[list[Delivery], list]:
        """Deliveries for plain subscribers and [(group, members)] for shared groups."""
        key = (mountpoint, topic)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        root = self._root.children.get(mountpoint)
        folded: dict[SubscriberId, list] = {}
        groups: list = []
        if root is not None:
            words = topic.split("/")
            self._walk(root, words, 0, folded, groups, topic.startswith("$"))
        result = ([Delivery(sid, f[0], f[1], f[2], tuple(f[3])) for sid, f in folded.items()], groups)
        if len(self.cache) >= self.CACHE_MAX:
            self.cache.clear()
        self.cache[key] = result
        return result

    def _walk(self, node: _Node, words: list[str], i: int, folded: dict, groups: list,
              dollar: bool) -> None:
        """Depth first, as a recursion would go, but on a list: a topic may have thousands of levels."""
        n = len(words)
        stack = [(node, i)]
        pop, push = stack.pop, stack.append
        while stack:
            node, i = pop()
            children = node.children
            wild_ok = not (dollar and i == 0)  # a leading wildcard never matches $-topics
            if wild_ok:
                hash_node = children.get("#")
                if hash_node is not None:
                    self._collect(hash_node, folded, groups)
            if i == n:
                self._collect(node, folded, groups)
                continue
            if wild_ok:
                plus = children.get("+")
                if plus is not None:
                    push((plus, i + 1))
            nxt = children.get(words[i])
            if nxt is not None:
                push((nxt, i + 1))  # taken first: the exact word before "+", as before

    @staticmethod
    def _collect(node: _Node, folded: dict, groups: list) -> None:
        for sid, sub in node.subs.items():
            f = folded.get(sid)
            if f is None:
                f = folded[sid] = [-1, -1, False, []]
            if sub.qos > f[0]:
                f[0] = sub.qos
            if not sub.no_local and sub.qos > f[1]:
                f[1] = sub.qos
            f[2] = f[2] or sub.retain_as_published
            if sub.sub_id:
                f[3].append(sub.sub_id)
        for group, members in node.shared.items():
            groups.append((group, members))
