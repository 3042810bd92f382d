"""Shared subscriptions across endpoints: one member of a group, anywhere, gets each message.

Every endpoint announces, per shared filter it has members for, whether one
of them is online (T_SHARED, on every change and after its T_SUBS when a
stream comes up), so whoever routes a message knows which endpoints can hand
it to a connected client. shared_subscription_policy (VerneMQ's values):

- `prefer_local`: an online member here; else an online member elsewhere;
  else an offline member here; else an offline member elsewhere.
- `local_only`: members here only (online first); none here, nobody gets it.
- `random`: any endpoint with an online member, this one included; offline
  members only when no member is online anywhere.

A message never waits for an offline member while an online one exists on an
endpoint we are linked to; when a member goes offline, the shared messages it
had not delivered go to an online member here or elsewhere (redistribute).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from vmqpy.broker.message import Msg
from vmqpy.broker.registry import split_filter
from vmqpy.broker.router import Subscription
from vmqpy.cluster import links as iw

if TYPE_CHECKING:
    from vmqpy.cluster.runtime import WorkerRuntime

# The "subscription" of an endpoint in the remote router's shared groups says whether it
# has an online member (identity is what counts, not the fields).
ONLINE = Subscription(qos=1)
OFFLINE = Subscription(qos=0)

RemoteGroups = dict[str, dict[str, bool]]  # group -> {endpoint: has an online member}


class ClusterShared:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.rt = runtime
        self.online: set[tuple[str, str]] = set()  # local shared (mountpoint, filter) with an online member

    # -- what this endpoint announces --------------------------------------------
    def check(self, mountpoint: str, filt: str) -> None:
        """Recompute whether shared filter `filt` has an online member here; announce a change."""
        plain, group = split_filter(filt)
        if group is None:
            return
        queues = self.rt.node.registry.queues
        members = self.rt.node.router.members(mountpoint, plain, group)
        up = any((q := queues.get(sid)) is not None and q.online for sid in members)
        key = (mountpoint, filt)
        if up != (key in self.online):
            if up:
                self.online.add(key)
            else:
                self.online.discard(key)
            self.rt.links.broadcast((iw.T_SHARED, mountpoint, filt, up))

    def presence(self, sid: tuple[str, str]) -> None:
        """Registry's seam: `sid` came online or went offline."""
        for filt in self.rt.node.registry.subscriptions.get(sid) or ():
            self.check(sid[0], filt)

    def removed(self, mountpoint: str, filt: str) -> None:
        """The last local member of `filt` is gone (its T_UNSUB says the rest)."""
        self.online.discard((mountpoint, filt))

    def sync_records(self) -> list[tuple]:
        return [(iw.T_SHARED, mp, filt, True) for mp, filt in self.online]

    # -- what other endpoints announce -------------------------------------------
    def received(self, k: str, mountpoint: str, filt: str, up: bool) -> None:
        if (mountpoint, filt) not in self.rt.remote_filters.get(k, ()):
            return  # a filter k no longer has (its T_UNSUB is on the way)
        plain, group = split_filter(filt)
        if group is None:
            raise ValueError(f"T_SHARED for a plain filter {filt!r}")
        self.rt.remote.add((mountpoint, k), plain, ONLINE if up else OFFLINE, group)
        self.rt.targets_changed()

    # -- routing --------------------------------------------------------------
    def pick(self, msg: Msg, local: dict[str, dict], remote: RemoteGroups, chosen: dict[str, list[str]]) -> int:
        """One target per group: a local member (delivered here) or an endpoint (added to `chosen`,
        endpoint -> group names). Returns the local deliveries made."""
        node = self.rt.node
        policy = node.config["shared_subscription_policy"]
        queues = node.registry.queues
        peers = self.rt.links.peers
        n = 0
        for name in {*local, *remote}:
            members = local.get(name)
            here_up = members is not None and any((q := queues.get(s)) is not None and q.online for s in members)
            there = {k: up for k, up in remote.get(name, {}).items() if (p := peers.get(k)) is not None and p.up}
            if policy == "local_only":
                target = None if members is not None else ""
            else:
                target = _choose(policy, members is not None, here_up, there)
            if target is None:
                n += node.shared.deliver(msg, name, members)
            elif target:
                chosen.setdefault(target, []).append(name)
        return n

    def forward(self, msg: Msg, group: str) -> bool:
        """Hand a shared message no local online member can take to an endpoint with an online
        member of `group`; False if there is none."""
        _, remote = self.rt.targets(msg.mountpoint, msg.topic)
        peers = self.rt.links.peers
        online = [k for k, up in remote.get(group, {}).items() if up and (p := peers.get(k)) is not None and p.up]
        if not online:
            return False
        peers[random.choice(online)].send(iw.pub_record(msg, (group,)))
        return True


def _choose(policy: str, here: bool, here_up: bool, there: dict[str, bool]) -> str | None:
    """None: deliver here; an endpoint id; "": nobody (no member anywhere we can reach)."""
    there_up = [k for k, up in there.items() if up]
    if policy == "prefer_local" and here_up:
        return None
    if there_up and (not here_up or random.randrange(len(there_up) + 1)):
        return random.choice(there_up)
    if here_up or here:
        return None
    return random.choice(list(there)) if there else ""
