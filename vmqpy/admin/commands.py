"""The command tree behind the admin socket and /api/v1: `vernemq` and `vmq-admin` commands.

Each command is one function taking the node and its parsed arguments
(VerneMQ's style: `session show --client_id=x`, `client-id=x`, bare flags
like `--cleanup`) and returning (ok, output). Output is text or a `Table`:
vmq-admin prints a table framed as VerneMQ does, /api/v1 returns its rows as
JSON. A command's docstring is its `--help` text; its first line describes
it in the usage listing.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent

from vmqpy import __version__
from vmqpy.admin.apikeys import api_keys, new_key, parse_expiry
from vmqpy.admin.table import FORMATS, render_json, render_table, split_format, table_document, text_document
from vmqpy.config import ConfigError
from vmqpy.config import Listener as ListenerSpec
from vmqpy.config_schema import LISTENER_OPTIONS
from vmqpy.metrics import fmt_value
from vmqpy.mqtt import reasons as R

if TYPE_CHECKING:
    from vmqpy.broker.node import Node


class Args(dict[str, str]):
    """Parsed arguments; `bare` names the flags given without a value (`--client_id`, value
    'true'), `valued` those given with one (a word may be both: `--client_id=x --client_id`)."""

    def __init__(self) -> None:
        super().__init__()
        self.bare: set[str] = set()
        self.valued: set[str] = set()


@dataclass
class Table:
    rows: list[dict[str, Any]]
    columns: list[str]

    def __str__(self) -> str:
        return render_table([{c: _cell(r.get(c)) for c in self.columns} for r in self.rows], self.columns)

    def document(self) -> dict[str, Any]:
        return table_document(self.rows, self.columns)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


Output = str | Table
Result = tuple[bool, Output]
Command = Callable[["Node", Args], Result]
COMMANDS: dict[tuple[str, ...], Command] = {}

# What `vmq-admin` says about each command group (VerneMQ's wording).
GROUPS = {
    "node": "Manage this node",
    "cluster": "Manage this node's cluster membership",
    "session": "Retrieve session information",
    "plugin": "Manage plugin system",
    "listener": "Manage listener interfaces",
    "metrics": "Retrieve System Metrics",
    "api-key": "Manage API keys for the HTTP management interface",
    "trace": "Trace various aspects of VerneMQ",
    "tls": "Manage TLS/SSL",
    "retain": "Show and filter MQTT retained messages",
    "webhooks": "Manage webhooks",
    "bridge": "Manage MQTT bridges",
    "script": "Manage lua scripts",
    "set": "Set a runtime config value (set KEY=VALUE)",
    "show": "Show config values (show KEY ...)",
}
_HIDDEN = {"ping", "stop"}  # used by the `vernemq` script, not listed by vmq-admin


def command(*path: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[path] = fn
        return fn
    return register


def parse_args(words: list[str]) -> Args:
    """`--a=1 b=2 --flag -i 5` -> {'a': '1', 'b': '2', 'flag': 'true', 'i': '5'} with bare == {'flag'}:
    a one-letter flag takes the next word as its value when that is neither a flag nor key=value
    (clique's `-i 5`, as in `cluster leave node=N -k -i 5 -t 60`)."""
    args = Args()
    words = list(words)
    i = 0
    while i < len(words):
        word = words[i]
        key, sep, value = word.lstrip("-").partition("=")
        nxt = words[i + 1] if i + 1 < len(words) else None
        if not sep and len(word) == 2 and word[0] == "-" and nxt is not None and not nxt.startswith("-") \
                and "=" not in nxt:
            sep, value = "=", nxt
            i += 1
        if sep:
            args[key] = value
            args.valued.add(key)
        else:
            args.setdefault(key, "true")
            args.bare.add(key)
        i += 1
    return args


def execute(node: Node, argv: list[str]) -> Result:
    """Run the command `argv` names; usage text for a group, no command or an unknown one."""
    for n in range(len(argv), 0, -1):
        path = tuple(argv[:n])
        fn = COMMANDS.get(path)
        if fn is not None:
            args = parse_args(argv[n:])
            if "help" in args.bare:
                return True, _help(path, fn)
            return fn(node, args)
    known = [argv[:n] for n in range(len(argv), 0, -1) if _subcommands(tuple(argv[:n]))]
    group = tuple(known[0]) if known else ()
    asked = not argv or argv[len(group):] in ([], ["--help"], ["-h"], ["help"])
    return asked, usage(group)


def run_command(node: Node, argv: list[str]) -> Result:
    return execute(node, argv)


def formatted(argv: list[str], run: Callable[[list[str]], Result]) -> tuple[bool, str]:
    """Run `argv` without its `--format=human|json` word and print the output in that format, as
    clique does for every VerneMQ command (a table as JSON rows, text as a text element)."""
    argv, fmt = split_format(argv)
    if fmt is not None and fmt not in FORMATS:
        return False, f"Error: invalid value for --format: {fmt} (valid: {', '.join(FORMATS)})"
    ok, out = run(argv)
    if fmt != "json":
        return ok, str(out)
    return ok, render_json(out.document() if isinstance(out, Table) else text_document(str(out)), ok)


def _subcommands(prefix: tuple[str, ...]) -> dict[str, str]:
    """Next words after `prefix` with what they do (a command's first doc line or the group text)."""
    subs: dict[str, str] = {}
    for path, fn in COMMANDS.items():
        if len(path) > len(prefix) and path[:len(prefix)] == prefix and path[0] not in _HIDDEN:
            word = path[len(prefix)]
            is_leaf = len(path) == len(prefix) + 1
            doc = (fn.__doc__ or "").strip().splitlines()
            subs.setdefault(word, (doc[0] if doc and is_leaf else "") if prefix else GROUPS.get(word, ""))
    return dict(sorted(subs.items()))


def usage(prefix: tuple[str, ...] = ()) -> str:
    subs = _subcommands(prefix)
    width = max(map(len, subs), default=0) + 2
    head = ["Usage: vmq-admin " + " ".join((*prefix, "<sub-command>")), ""]
    if not prefix:
        head += ["  Administrate the cluster.", ""]
    lines = [*head, "  Sub-commands:", *(f"    {w:<{width}}{d}" for w, d in subs.items()),
             "  Use --help after a sub-command for more details."]
    return "\n".join(lines)


def _help(path: tuple[str, ...], fn: Command) -> str:
    doc = (fn.__doc__ or "").strip()
    return f"Usage: vmq-admin {' '.join(path)}\n\n  {doc}"


def _usage_error(path: str) -> Result:
    return False, f"Usage: vmq-admin {path}"


# -- node and cluster --------------------------------------------------------------------------------------

@command("ping")
def ping(node: Node, args: Args) -> Result:
    """Answer pong (used by `vernemq ping`) once the node is started; in a cluster only once this node
    has the others' state."""
    if not node.ready:
        return False, "starting"
    waiting = node.cluster.members.syncing() if node.cluster is not None else None
    if waiting:
        return False, f"syncing with {', '.join(waiting)}"
    return True, "pong"


@command("stop")
def stop(node: Node, args: Args) -> Result:
    """Stop the node gracefully (used by `vernemq stop`)."""
    gevent.spawn_later(0.05, node.stop)
    return True, "ok"


def node_status(node: Node) -> dict[str, Any]:
    """What `node status` and the HTTP /status page show."""
    snap = node.metrics.snapshot()
    return {"node": node.name, "status": "running", "version": __version__,
            "uptime": int(time.time() - node.started_at),
            "connections": len(node.sessions), "subscriptions": node.router.count,
            "retained": node.retain.count, "queues": len(node.registry.queues),
            "msg_in": snap.get("mqtt_publish_received", 0), "msg_out": snap.get("queue_message_out", 0),
            "msg_dropped": snap.get("queue_message_drop", 0),
            # what the status page also shows: messages waiting in queues (memory and store), netsplits
            "queued": sum(q.size() for q in node.registry.queues.values()),
            "offline_messages": node.msg_store.stats()["index_entries"],
            "netsplits": snap.get("netsplit_detected", 0)}


@command("node", "status")
def node_status_cmd(node: Node, args: Args) -> Result:
    """Show the status of this node: uptime (seconds), connections, subscriptions, retained, queues."""
    row = node_status(node)
    return True, Table([row], list(row))


# -- metrics and config ------------------------------------------------------------------------------------

@command("metrics", "show")
def metrics_show(node: Node, args: Args) -> Result:
    """Show the node's metrics.

  --with-descriptions   precede every metric with its description"""
    lines = []
    for s in node.metrics.samples():
        if "with-descriptions" in args:
            lines.append(f"# {s.description}")
        lines.append(f"{s.kind}.{s.name} = {fmt_value(s.value)}")
    return True, "\n".join(lines)


@command("set")
def config_set(node: Node, args: Args) -> Result:
    """Set runtime config values: set KEY=VALUE [KEY=VALUE ...] [--all] (vernemq.conf keys marked runtime).

  --all   on every node of the cluster (kept in its replicated metadata, so a node restarted or
          joining later takes the values too)"""
    changes = {k: args[k] for k in args.valued}
    if not changes:
        return _usage_error("set KEY=VALUE ... [--all]")
    try:
        node.change_config(changes)
    except ConfigError as e:
        return False, f"Error: {e}"
    if "all" in args.bare and node.cluster is not None:
        from vmqpy.cluster.metadata import CONFIG  # every endpoint applies what is set there

        shared = node.cluster.meta.view(CONFIG)
        for key, value in changes.items():
            shared.put(CONFIG, key, value)
    return True, ""


@command("show")
def config_show(node: Node, args: Args) -> Result:
    """Show the effective value of config keys: show KEY [KEY ...]."""
    keys = [k for k in args if k in args.bare]
    if not keys:
        return _usage_error("show KEY ...")
    effective = dict(node.config.effective())
    missing = [k for k in keys if k not in effective]
    if missing:
        return False, f"Error: unknown or unset config key {missing[0]}"
    return True, Table([{"node": node.name, **{k: effective[k] for k in keys}}], ["node", *keys])


# -- queries with column selection (session show, retain show) ---------------------------------------------

def _query(rows: Iterable[dict[str, Any]], args: Args, items: list[str], defaults: list[str]) -> Result:
    """VerneMQ's vmq_ql flags: `--item` picks a column, `--item=value` filters, `--item=~regex` keeps rows
    whose value the regex matches anywhere (vmq_ql's MATCH, Erlang's re:run), `--limit=N` (100)."""
    unknown = [k for k in args if k not in items and k not in ("limit", "rowtimeout")]
    if unknown:
        return False, f"Error: invalid flag --{unknown[0]} (valid: {', '.join(items)})"
    try:
        limit = int(args.get("limit", "100"))
    except ValueError:
        return False, "Error: --limit expects a number"
    where = {k: args[k] for k in args.valued if k in items and not args[k].startswith("~")}
    try:
        match = {k: re.compile(args[k][1:]) for k in args.valued if k in items and args[k].startswith("~")}
    except re.error as e:
        return False, f"Error: can't compile regexp: {e}"
    columns = sorted({k for k in args.bare if k in items} or set(defaults))
    out = []
    for row in rows:
        if all(_cell(row.get(k)) == v for k, v in where.items()) and \
                all(m.search(_cell(row.get(k))) for k, m in match.items()):
            out.append(row)
            if len(out) >= limit:
                break
    return True, Table(out, columns)


# VerneMQ's 31 (vmq_info:fields_config), then vmqpy's per-session drop count (VerneMQ #1303)
QUEUE_ITEMS = ["node", "mountpoint", "client_id", "queue_pid", "queue_size", "session_pid", "is_offline",
               "is_online", "statename", "deliver_mode", "offline_messages", "online_messages", "num_sessions",
               "clean_session", "is_plugin", "queue_started_at"]
SESSION_FIELDS = ["user", "peer_host", "peer_port", "protocol", "waiting_acks", "session_started_at"]
SUBSCRIPTION_FIELDS = ["topic", "qos", "rap", "no_local"]
MESSAGE_FIELDS = ["msg_ref", "msg_qos", "routing_key", "dup", "payload"]
SESSION_ITEMS = [*QUEUE_ITEMS, *SESSION_FIELDS, *SUBSCRIPTION_FIELDS, *MESSAGE_FIELDS, "dropped"]
SESSION_DEFAULTS = ["client_id", "is_online", "mountpoint", "peer_host", "peer_port", "user"]


def _pid(obj: object) -> str:
    """An Erlang-pid-like name of a queue or session: this process and the object's identity."""
    return f"<{os.getpid()}.{id(obj)}.0>"


def _session_rows(node: Node, wanted: set[str]) -> Iterable[dict[str, Any]]:
    """One row per session of each queue (one per offline queue); with subscription or message
    columns asked for, one per subscription / stored message, as vmq_info's joined tables."""
    reg = node.registry
    for sid in sorted(set(reg.queues) | set(reg.sessions)):
        queue = reg.queues.get(sid)
        sessions = list(queue.sessions) if queue is not None else []
        size = queue.size() if queue is not None else node.msg_store.count(f"{sid[0]}\x00{sid[1]}")
        online = bool(sessions)
        base = {"node": node.name, "mountpoint": sid[0], "client_id": sid[1], "is_online": online,
                "is_offline": not online, "clean_session": sid not in reg.sessions,
                "num_sessions": len(sessions), "queue_size": size,
                "online_messages": size if online else 0, "offline_messages": 0 if online else size,
                "queue_pid": _pid(queue) if queue is not None else None,
                "statename": "online" if online else "offline", "is_plugin": False,
                "deliver_mode": queue.opts.deliver_mode if queue is not None else None,
                "queue_started_at": queue.started_at if queue is not None else None,
                "dropped": queue.dropped if queue is not None else 0}
        rows = [base | {"user": s.username or "", "peer_host": s.peer[0], "peer_port": s.peer[1],
                        "protocol": s.proto_level, "waiting_acks": s.inflight_count, "session_pid": _pid(s),
                        "session_started_at": s.started_at} for s in sessions] or [base]
        if wanted & set(SUBSCRIPTION_FIELDS):
            subs = reg.subscriptions.get(sid, {}).items()
            rows = [row | {"topic": filt, "qos": sub.qos, "rap": sub.retain_as_published,
                           "no_local": sub.no_local} for row in rows for filt, sub in subs]
        if wanted & set(MESSAGE_FIELDS):
            stored = node.msg_store.read(f"{sid[0]}\x00{sid[1]}")
            rows = [row | {"msg_ref": base64.b64encode(msg.ref).decode(), "msg_qos": flags & 3,
                           "routing_key": msg.topic, "dup": False, "payload": msg.payload.decode(errors="replace")}
                    for row in rows for _seq, msg, flags in stored]
        yield from rows


@command("session", "show")
def session_show(node: Node, args: Args) -> Result:
    """Show and filter sessions (online and offline).

  --client_id --is_online --mountpoint --peer_host --peer_port --user   the default columns
  --<item>           show column <item>; items: VerneMQ's node mountpoint client_id queue_pid
                     queue_size session_pid is_offline is_online statename deliver_mode
                     offline_messages online_messages num_sessions clean_session is_plugin
                     queue_started_at user peer_host peer_port protocol waiting_acks
                     session_started_at topic qos rap no_local msg_ref msg_qos routing_key dup payload,
                     and dropped (messages the session's queue dropped)
  --<item>=<value>   only rows where <item> is <value> (e.g. --is_online=false)
  --<item>=~<regex>  only rows where the regex matches <item> (e.g. --client_id=~^sensor-1)
  --limit=<N>        at most N rows (default 100)
  --topic --qos --rap --no_local                      one row per subscription (none: left out)
  --msg_ref --msg_qos --routing_key --dup --payload   one row per stored message (none: left out)"""
    return _query(_session_rows(node, set(args)), args, SESSION_ITEMS, SESSION_DEFAULTS)


def _online(node: Node, sid: tuple[str, str]) -> list:
    return [s for s in node.sessions if s.sid == sid and not s.closed]


@command("session", "reauthorize")
def session_reauthorize(node: Node, args: Args) -> Result:
    """Reauthorize the subscriptions of a session.

  session reauthorize username=<Username> client-id=<ClientId> [--mountpoint=<MP>]
  Runs auth_on_subscribe again for every subscription; drops those now refused."""
    if "client-id" not in args or "username" not in args:
        return _usage_error("session reauthorize username=<Username> client-id=<ClientId>")
    sid = (args.get("mountpoint", ""), args["client-id"])
    subs = node.registry.subscriptions.get(sid, {})
    online = _online(node, sid)
    who = online[0] if online else _OfflineSession(sid, args["username"])
    dropped = 0
    for filt, sub in list(subs.items()):
        ((_, granted),) = node.authorize_subscribe(who, [(filt, sub.qos)], None)
        if granted >= 0x80:
            node.registry.unsubscribe(sid, filt)
            dropped += 1
    return True, "Done" if dropped else "Unchanged"


@dataclass
class _OfflineSession:
    """What authorize_subscribe reads of a session, for a client that is not connected."""

    sid: tuple[str, str]
    username: str
    proto_level: int = 4


RETAIN_ITEMS = ["mountpoint", "topic", "payload", "qos"]


@command("retain", "show")
def retain_show(node: Node, args: Args) -> Result:
    """Show and filter retained messages.

  --payload --topic      the default columns; --mountpoint --qos also exist
  --<item>=<value>       only rows where <item> is <value>
  --limit=<N>            at most N rows (default 100)"""
    rows = ({"mountpoint": m.mountpoint, "topic": m.topic, "qos": m.qos,
             "payload": m.payload.decode(errors="replace")}
            for m in sorted(node.retain.all(), key=lambda m: (m.mountpoint, m.topic)))
    return _query(rows, args, RETAIN_ITEMS, ["payload", "topic"])


# -- listeners ---------------------------------------------------------------------------------------------

def _listener_sets(node: Node) -> list:
    """The listener collections: MQTT listeners, and the HTTP listeners once they run."""
    http = getattr(getattr(node, "ops", None), "http", None)
    return [node.listeners] + ([http] if http is not None else [])


def _find_listener(node: Node, args: Args) -> tuple[Any, Any] | None:
    for listeners in _listener_sets(node):
        for key, listener in listeners.all.items():
            host, port = listener.address
            if host == args.get("address") and str(port) == args.get("port"):
                return listeners, key
    return None


@command("listener", "show")
def listener_show(node: Node, args: Args) -> Result:
    """Show all listeners: MQTT and HTTP (VerneMQ's columns).

  --tls (-t)    also the TLS settings: tls_version certfile cafile keyfile require_certificate
                use_identity_as_username psk_support pskfile
  --mqtt (-m)   also allowed_protocol_versions and allow_anonymous_override"""
    rows = [listener.describe() for ls in _listener_sets(node) for listener in ls.all.values()]
    columns = ["type", "status", "address", "port", "mountpoint", "max_conns", "active_conns", "all_conns"]
    if {"tls", "t"} & set(args):
        columns += ["tls_version", "certfile", "cafile", "keyfile", "require_certificate",
                    "use_identity_as_username", "psk_support", "pskfile"]
    if {"mqtt", "m"} & set(args):
        columns += ["allowed_protocol_versions", "allow_anonymous_override"]
    return True, Table(rows, columns)


@command("listener", "stop")
def listener_stop(node: Node, args: Args) -> Result:
    """Stop a listener.

  listener stop address=<IP> port=<Port> [--kill_sessions]
  Connected clients stay unless --kill_sessions."""
    found = _find_listener(node, args)
    if found is None:
        return False, "Error: no listener on that address and port"
    listeners, key = found
    listener = listeners.all[key]
    listeners.stop(listener)
    if "kill_sessions" in args:
        for session in [s for s in node.sessions if s.listener is listener]:
            session.kick(R.ADMINISTRATIVE_ACTION)
    return True, "Done"


@command("listener", "start")
def listener_start(node: Node, args: Args) -> Result:
    """Start a stopped listener, or a new MQTT (tcp) listener.

  listener start address=<IP> port=<Port> [--mountpoint=<MP>] [--max_connections=<N>]"""
    if "address" not in args or "port" not in args:
        return _usage_error("listener start address=<IP> port=<Port>")
    found = _find_listener(node, args)
    created = found is None
    if found is None:
        found = _new_mqtt_listener(node, args)
        if isinstance(found, str):
            return False, found
    listeners, key = found
    try:
        listeners.start(listeners.all[key])
    except Exception as e:  # ListenerError, bad address
        if created:
            listeners.all.pop(key, None)
        return False, f"Error: can't start listener: {e}"
    return True, "Done"


def _new_mqtt_listener(node: Node, args: Args) -> tuple[Any, str] | str:
    from vmqpy.broker.listeners import Listener

    if args.bare & {"ssl", "websocket", "http"}:
        return "Error: only plain MQTT (tcp) listeners can be started at runtime"
    try:
        port = int(args["port"])
    except ValueError:
        return "Error: port must be a number"
    opts = {o.name: node.config.get(f"listener.tcp.{o.name}") for o in LISTENER_OPTIONS if "tcp" in o.kinds}
    if "mountpoint" in args:
        opts["mountpoint"] = args["mountpoint"]
    if "max_connections" in args:
        opts["max_connections"] = float("inf") if args["max_connections"] == "infinity" \
            else int(args["max_connections"])
    name = f"{args['address']}:{port}"
    node.listeners.all[f"tcp.{name}"] = Listener(ListenerSpec("tcp", name, args["address"], port, opts))
    return node.listeners, f"tcp.{name}"


@command("listener", "restart")
def listener_restart(node: Node, args: Args) -> Result:
    """Restart a listener (connected clients stay).

  listener restart address=<IP> port=<Port>"""
    found = _find_listener(node, args)
    if found is None:
        return False, "Error: no listener on that address and port"
    listeners, key = found
    listeners.stop(listeners.all[key])
    try:
        listeners.start(listeners.all[key])
    except Exception as e:
        return False, f"Error: can't restart listener: {e}"
    return True, "Done"


@command("listener", "delete")
def listener_delete(node: Node, args: Args) -> Result:
    """Delete a listener (stopping it first) until the node restarts.

  listener delete address=<IP> port=<Port>"""
    found = _find_listener(node, args)
    if found is None:
        return False, "Error: no listener on that address and port"
    listeners, key = found
    listeners.stop(listeners.all.pop(key))
    return True, "Done"


# -- trace -------------------------------------------------------------------------------------------------

@command("trace", "client")
def trace_client(node: Node, args: Args) -> Result:
    """Trace the MQTT traffic of a client.

  trace client client-id=<ClientId> [mountpoint=<MP>] [--trace-timeout=<ms>] [--max-packets=<N>]
               [--payload-limit=<bytes>]
  Records the client's packets (both directions) for --trace-timeout ms (default 10000)
  or until --max-packets packets were seen, then prints them."""
    from vmqpy.admin.trace import Trace

    if "client-id" not in args:
        return _usage_error("trace client client-id=<ClientId>")
    try:
        timeout = int(args.get("trace-timeout", "10000")) / 1000
        max_packets = int(args.get("max-packets", "0"))
        payload_limit = int(args.get("payload-limit", "1024"))
    except ValueError:
        return False, "Error: --trace-timeout, --max-packets and --payload-limit expect numbers"
    trace = Trace(node, args["client-id"], args.get("mountpoint", ""), payload_limit, max_packets)
    return True, "\n".join(trace.run(timeout))


# -- API keys ----------------------------------------------------------------------------------------------

def _add_key(node: Node, key: str, args: Args) -> Result:
    try:
        api_keys(node).add(key, args.get("scope", "mgmt"), parse_expiry(args.get("expires")))
    except ValueError as e:
        return False, f"Error: {e}"
    return True, key


@command("api-key", "create")
def api_key_create(node: Node, args: Args) -> Result:
    """Create a random API key for the HTTP interface and print it.

  api-key create [scope=mgmt|status|metrics|health] [expires=<YYYY-MM-DDTHH:MM:SS>]"""
    return _add_key(node, new_key(node.config["min_apikey_length"]), args)


@command("api-key", "add")
def api_key_add(node: Node, args: Args) -> Result:
    """Add an API key of your choosing.

  api-key add key=<Key> [scope=...] [expires=...]"""
    if "key" not in args.valued:
        return _usage_error("api-key add key=<Key>")
    ok, out = _add_key(node, args["key"], args)
    return ok, "Done" if ok else out


@command("api-key", "delete")
def api_key_delete(node: Node, args: Args) -> Result:
    """Delete an API key.

  api-key delete key=<Key>"""
    if not args.get("key"):
        return _usage_error("api-key delete key=<Key>")
    if not api_keys(node).delete(args["key"]):
        return False, "Error: no such API key"
    return True, "Done"


@command("api-key", "show")
def api_key_show(node: Node, args: Args) -> Result:
    """Show the API keys."""
    return True, Table(api_keys(node).rows(), ["Key", "Scope", "Expires (UTC)", "has expired"])


# the other command groups register themselves
from vmqpy.admin import (  # noqa: E402,F401
    cluster_commands,
    config_commands,
    node_commands,
    plugin_commands,
    session_commands,
    tls_commands,
)
