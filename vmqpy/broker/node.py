"""One broker node: builds its parts, routes publishes, starts and stops in order."""

from __future__ import annotations

import logging
import time

import gevent

from vmqpy import client_classes
from vmqpy.broker.listeners import Listeners
from vmqpy.broker.message import Msg
from vmqpy.broker.overload import OverloadMonitor
from vmqpy.broker.queue import Dispatcher, Out, Queue
from vmqpy.broker.registry import Registry
from vmqpy.broker.retain import RetainStore
from vmqpy.broker.router import Router, Subscription
from vmqpy.broker.shared import SharedSubscriptions
from vmqpy.broker.wills import Wills
from vmqpy.metrics import Metrics
from vmqpy.plugins.hooks import Hooks
from vmqpy.process_stats import ProcessStats
from vmqpy.store.messages import MessageStore
from vmqpy.store.metadata import MetadataStore

log = logging.getLogger(__name__)


class Node:
    def __init__(self, config) -> None:
        self.config = config
        self.name: str = config["nodename"]
        self.started_at = time.time()
        self.metrics = Metrics()
        self.hooks = Hooks()
        self._hook_names = self.hooks.names  # the same set, one attribute lookup less on the hot path
        self.metadata = MetadataStore(config["metadata.dir"])
        self.msg_store = MessageStore(config["message_store.dir"], sync=config["message_store.sync"])
        self.router = Router()
        self._routes = self.router.cache  # Router.match's cache, read first on the hot path
        self.retain = RetainStore(self.metadata)
        self.registry = Registry(self)
        self.shared = SharedSubscriptions(self)
        self.wills = Wills(self)
        self.overload = OverloadMonitor(self)
        self.dispatcher = Dispatcher(self)
        self.sessions: set = set()
        self.listeners = Listeners(self)
        self.plugins = None
        self.admin = None    # the admin socket server (vmqpy.assembly)
        self.ops = None      # HTTP listeners, $SYS, Graphite: vmqpy.admin.services.Operations (vmqpy.assembly)
        self.cluster = None  # vmqpy.cluster.runtime.WorkerRuntime when nr_of_workers > 1
        self.stopped = gevent.event.Event()
        self.ready = False  # started: `vernemq ping` says pong from here on
        self._retain_expiry: gevent.Greenlet | None = None
        self.metrics.gauge("router_subscriptions", lambda: self.router.count)
        self.metrics.gauge("retain_messages", lambda: self.retain.count)
        self.metrics.gauge("active_mqtt_connections", lambda: len(self.sessions) - self._websocket_sessions())
        self.metrics.gauge("active_mqttws_connections", self._websocket_sessions)
        self.metrics.gauge("total_active_connections", lambda: len(self.sessions))
        self.metrics.counter_live("bytes_received", lambda: sum(s.bytes_in for s in self.sessions))
        self.metrics.counter_live("bytes_sent", lambda: sum(s.bytes_out for s in self.sessions))
        ProcessStats().register(self.metrics)
        self.metrics.labelled = lambda: client_classes.figures(self)
        self.metrics.gauge("queue_processes", lambda: len(self.registry.queues))

    def _websocket_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.listener.kind in ("ws", "wss"))

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Start in order; `admin` and `ops` are the layers above, given by vmqpy.assembly."""
        from vmqpy.plugins.manager import PluginManager

        self.plugins = PluginManager(self.hooks, self.config, self)
        self.plugins.start_enabled()
        if self.admin is not None:
            self.admin.start()
        self.dispatcher.start()
        self.overload.start()
        if self.config["expire_retain_cache"]:
            self._retain_expiry = gevent.spawn(self._expire_retained, self.config["expire_retain_cache"])
        if self.ops is not None:
            self.ops.start()
        # Last: a client that can connect finds everything running, and ping says pong at once.
        # A worker's listeners accept once its parent says so (cluster/workers.py).
        parent_listens = self.cluster is not None and self.cluster.listen_fds
        self.listeners.start_all(accept=not parent_listens)
        self.ready = True
        log.info("node %s started", self.name)

    def _expire_retained(self, every: int) -> None:
        """expire_retain_cache: clear expired retained messages nobody asks for (a subscription that
        matches one clears it anyway)."""
        while True:
            gevent.sleep(every)
            n = self.retain.delete_expired()
            if n:
                log.info("%d expired retained messages deleted", n)

    def stop(self) -> None:
        """Graceful stop: no new clients, wills where due, queues flushed to disk."""
        log.info("node %s stopping", self.name)
        if self.ops is not None:
            self.ops.stop()
        self.listeners.stop_all()
        self.overload.stop()
        if self._retain_expiry is not None:
            self._retain_expiry.kill(block=False)
        self.dispatcher.stop()
        for session in list(self.sessions):
            session.kick(0x8B)  # server shutting down
        gevent.sleep(0)  # let the connection greenlets run their cleanup
        for queue in list(self.registry.queues.values()):
            queue.persist_memory()
        self.msg_store.flush()
        if self.cluster is not None:
            self.cluster.stop()  # before the stores close: what the links receive is written there
        if self.plugins is not None:
            self.plugins.stop_all()
        if self.admin is not None:
            self.admin.stop()
        self.msg_store.close()
        self.metadata.close()
        self.stopped.set()
        log.info("node %s stopped", self.name)

    def change_config(self, changes: dict[str, str]) -> None:
        """Set runtime keys (vmq-admin set, or set --all arriving from another node); then the plugins'
        on_config_change hook gets {key: new typed value}, as VerneMQ's change_config. Raises ConfigError
        (nothing changed after the first bad key)."""
        for key, value in changes.items():
            self.config.set(key, value)
        self.hooks_event("on_config_change", {key: self.config[key] for key in changes})

    # -- hooks --------------------------------------------------------------
    def hooks_event(self, name: str, *args) -> None:
        if name in self._hook_names:
            self.hooks.all(name, *args)

    def anonymous_allowed(self, session) -> bool:
        """allow_anonymous, or the session's listener has allow_anonymous_override."""
        return self.config["allow_anonymous"] or session.listener.opts.get("allow_anonymous_override", False)

    def authorize_publish(self, session, msg: Msg) -> bool:
        """Run auth_on_publish(_m5); apply its modifiers to `msg`. False = denied."""
        v5 = session.proto_level == 5
        name = "auth_on_publish_m5" if v5 else "auth_on_publish"
        hooks = self.hooks
        active = self._hook_names
        if name not in active:
            # No plugin decides: open only where anonymous access is allowed.
            return self.anonymous_allowed(session)
        args = (session.username, session.sid, msg.qos, msg.topic, msg.payload, msg.retain)
        if v5:
            args += (msg.properties or {},)
        plugins = session.authz_plugins  # a listener's authz_plugins; the plain call when none (hot path)
        res, mods = hooks.all_till_ok(name, *args, plugins=plugins) if plugins else hooks.all_till_ok(name, *args)
        if res != "ok":
            session.counters["mqtt_publish_auth_error"] += 1
            return False
        if mods:
            msg.received = None  # rewritten: the frame it came in is no longer what goes out
            msg.topic = mods.get("topic", msg.topic)
            msg.payload = mods.get("payload", msg.payload)
            msg.qos = mods.get("qos", msg.qos)
            msg.retain = mods.get("retain", msg.retain)
            msg.mountpoint = mods.get("mountpoint", msg.mountpoint)
            if v5 and "properties" in mods:
                msg.properties = mods["properties"]
        if ("on_publish_m5" if v5 else "on_publish") in active:
            hooks.all("on_publish_m5" if v5 else "on_publish", *args[:3], msg.topic, msg.payload,
                      msg.retain, *((msg.properties or {},) if v5 else ()))
        return True

    def authorize_subscribe(self, session, topics: list[tuple[str, int]],
                            props: dict | None) -> list[tuple[str, int]]:
        """(filter, granted QoS) per requested filter; a QoS >= 0x80 refuses it.

        auth_on_subscribe(_m5) may rewrite filters and QoS with a `topics`
        modifier of the same length (VerneMQ's semantics). A SUBSCRIBE the hooks
        refuse as a whole is asked again filter by filter: one filter the ACL
        refuses does not refuse the others (VerneMQ would refuse all).
        """
        v5 = session.proto_level == 5
        name = "auth_on_subscribe_m5" if v5 else "auth_on_subscribe"
        refused = 0x87 if v5 else 0x80
        if not self.hooks.active(name):
            ok = self.anonymous_allowed(session)
            return [(f, qos if ok else refused) for f, qos in topics]
        res, mods = self.hooks.all_till_ok(name, session.username, session.sid, topics,
                                           *((props or {},) if v5 else ()), plugins=session.authz_plugins)
        if res != "ok":
            if len(topics) > 1:  # refused as a whole: each filter on its own, so the others are granted
                return [granted for topic in topics for granted in self.authorize_subscribe(session, [topic], props)]
            session.counters["mqtt_subscribe_auth_error"] += 1
            return [(f, refused) for f, _ in topics]
        rewritten = mods.get("topics") if mods else None
        if rewritten is None:
            return list(topics)
        if len(rewritten) != len(topics):
            log.error("%s modifiers for %s have %d topics for %d requested; refused",
                      name, session.sid, len(rewritten), len(topics))
            return [(f, refused) for f, _ in topics]
        return [(f, qos) for f, qos in rewritten]

    def authorize_unsubscribe(self, session, topics: list[str], props: dict | None) -> list[str]:
        """The filters to unsubscribe: on_unsubscribe(_m5) may rewrite them (same length)."""
        v5 = session.proto_level == 5
        name = "on_unsubscribe_m5" if v5 else "on_unsubscribe"
        if not self.hooks.active(name):
            return topics
        res, mods = self.hooks.all_till_ok(name, session.username, session.sid, topics,
                                           *((props or {},) if v5 else ()))
        rewritten = mods.get("topics") if res == "ok" and mods else None
        if rewritten is None or len(rewritten) != len(topics):
            return topics
        return list(rewritten)

    def on_deliver(self, session, out: Out) -> Msg:
        """Run on_deliver(_m5) for one delivery; the message to send, rewritten by its modifiers."""
        msg = out.msg
        v5 = session.proto_level == 5
        res, mods = self.hooks.all_till_ok("on_deliver_m5" if v5 else "on_deliver", session.username,
                                           session.sid, out.qos, msg.topic, msg.payload, out.retain,
                                           *((msg.properties or {},) if v5 else ()))
        if res != "ok" or not mods:
            return msg
        props = mods.get("properties", msg.properties) if v5 else msg.properties
        return Msg(mods.get("topic", msg.topic), mods.get("payload", msg.payload), msg.qos, msg.retain,
                   props, msg.mountpoint, msg.expiry, msg.sender, msg.ref)

    def netsplit_refuses(self, operation: str) -> bool:
        """True (and counted) when the cluster is split and `allow_<operation>_during_netsplit` is off:
        the operation must be refused (register, publish, subscribe, unsubscribe)."""
        cluster = self.cluster
        if cluster is None or not cluster.split or self.config[f"allow_{operation}_during_netsplit"]:
            return False
        counters = self.metrics.counters
        counters[f"netsplit_{operation}_refused"] += 1
        if operation != "register":  # VerneMQ's mqtt_<operation>_error counts these refusals
            counters[f"mqtt_{operation}_error"] += 1
        return True

    # -- routing ------------------------------------------------------------
    def publish(self, msg: Msg, inbound: tuple | None = None) -> int:
        """Route one message to every matching queue; returns the number of deliveries.

        `inbound`: forwarded by another worker, with the shared groups it chose us for.
        -1: a client's topic deeper than topic_max_depth, not routed (checked where the route is not
        cached yet, so a topic is counted once per trie change and not on every publish)."""
        route = self._routes.get((msg.mountpoint, msg.topic))
        if route is None:
            if msg.sender is not None and inbound is None and self.too_deep(msg.topic):
                return -1
            route = self.router.match(msg.mountpoint, msg.topic)
        if msg.retain and inbound is None:
            self.retain.put(msg)
        deliveries, groups = route
        if msg.frames is None and len(deliveries) + len(groups) > 1:
            msg.frames = {}  # a fan-out: each delivery shape is encoded once
        queues = self.registry.queues
        upgrade = None  # read only where the subscription's QoS differs from the message's
        sender = msg.sender
        n = 0
        for d in deliveries:
            sid = d.sid
            sub_qos = d.qos_not_local if sid == sender else d.qos
            if sub_qos < 0:
                continue  # only no_local subscriptions of the publisher itself
            queue = queues.get(sid) or self.registry.queue_for(sid)
            if queue is None:
                continue
            qos = msg.qos
            if sub_qos != qos:
                if upgrade is None:
                    upgrade = self.config["upgrade_outgoing_qos"]
                if upgrade or sub_qos < qos:
                    qos = sub_qos
            queue.enqueue(msg, qos, msg.retain and d.retain_as_published, d.sub_ids)
            n += 1
        if self.cluster is not None:
            n += self.cluster.route(msg, groups, inbound)
        else:
            for group, members in groups:
                n += self.shared.deliver(msg, group, members)
        self.metrics.counters["router_matches_local"] += n
        return n

    def too_deep(self, topic: str) -> bool:
        """More levels than topic_max_depth (0: no limit), as VerneMQ's vmq_topic counts them."""
        limit = self.config["topic_max_depth"]
        return bool(limit) and topic.count("/") >= limit

    def deliver_retained(self, queue: Queue, filt: str, sub: Subscription) -> None:
        sub_ids = (sub.sub_id,) if sub.sub_id else ()
        for m in self.retain.match(queue.sid[0], filt):
            queue.enqueue(m, min(m.qos, sub.qos), True, sub_ids)
