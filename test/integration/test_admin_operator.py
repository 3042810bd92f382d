"""The vmq-admin commands of a VerneMQ operator's runbook against a real node: config, log, metrics,
retain delete, session disconnect clients|batch, session unsubscribe, trace stop_all, tls, node."""

from __future__ import annotations

import threading

import pytest
from broker import free_port, wait_until
from clients import V5, Paho, Raw
from crlkit import reissue
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pki import make_pki

from vmqpy.admin.commands import COMMANDS

NEW_COMMANDS = [
    ("config", "show"), ("config", "reset"), ("log", "level"), ("log", "show", "config"), ("metrics", "reset"),
    ("retain", "delete"), ("retain", "delete-expired"), ("session", "disconnect", "clients"),
    ("session", "disconnect", "batch"), ("session", "unsubscribe"), ("trace", "stop_all"), ("tls", "show"),
    ("tls", "check"), ("tls", "clear-pem-cache"), ("node", "start"), ("node", "stop"), ("node", "history"),
    ("node", "upgrade"), ("node", "swc_sync_status"), ("node", "flag_as_init_synced"),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_help_at_every_level(broker):
    ok, out = broker.admin("--help")
    assert ok and all(f"\n    {g} " in out for g in ("config", "log", "tls", "node"))
    for group in {path[0] for path in COMMANDS if path[0] not in ("ping", "stop")}:
        ok, out = broker.admin(group, "--help")
        assert ok and out.startswith(f"Usage: vmq-admin {group}"), (group, out)
    for path in NEW_COMMANDS:
        ok, out = broker.admin(*path, "--help")
        assert ok and out.startswith(f"Usage: vmq-admin {' '.join(path)}\n"), (path, out)
    ok, out = broker.admin("session", "disconnect", "--help")
    assert ok and "clients" in out and "batch" in out and "--cleanup, -c" in out


def test_config_show_and_reset(broker):
    ok, out = broker.admin("config", "show")
    assert (ok, out) == (False, "Please provide an app=<App>")
    assert broker.admin("config", "show", "app=vmq_nothing") == (False, "App not configured via vmq_config")
    assert broker.admin("config", "show", "app=vmq_server", "--key=max_inflight_messages") == \
        (True, "Scope: env\nValue: 20")
    assert broker.admin("set", "max_inflight_messages=7")[0]
    assert broker.admin("config", "show", "app=vmq_server", "--key=max_inflight_messages") == \
        (True, "Scope: node\nValue: 7")
    rows = {r["Config"]: r for r in broker.rows("config", "show", "app=vmq_server")}
    assert rows["max_inflight_messages"] == {"Config": "max_inflight_messages", "Env": "", "Node": "7", "Global": ""}
    assert rows["allow_anonymous"]["Env"] == "on"
    assert "vmq_acl.acl_file" not in rows
    assert {r["Config"] for r in broker.rows("config", "show", "app=vmq_acl")} >= {"vmq_acl.acl_file"}

    assert broker.admin("config", "reset", "app=vmq_server", "--key=max_inflight_messages") == (True, "Done")
    assert broker.rows("show", "max_inflight_messages")[0]["max_inflight_messages"] == "20"
    assert broker.admin("config", "reset", "app=vmq_server", "--key=max_inflight_messages",
                        "--config-val=9") == (True, "Done")
    assert broker.rows("show", "max_inflight_messages")[0]["max_inflight_messages"] == "9"
    assert broker.admin("config", "reset", "app=vmq_server", "--key=max_inflight_messages", "--config-val=x")[1] \
        .startswith("Error: max_inflight_messages: expected an integer")
    conf = broker.root / "other.conf"
    conf.write_text("max_inflight_messages = 11\nmax_online_messages = 50\n")
    assert broker.admin("config", "reset", "app=vmq_server", f"--config-file={conf}") == (True, "Done")
    values = broker.rows("show", "max_inflight_messages", "max_online_messages")[0]
    assert (values["max_inflight_messages"], values["max_online_messages"]) == ("11", "50")
    assert broker.admin("config", "reset", "app=vmq_server", "--key=max_client_id_size",
                        f"--config-file={conf}") == (False, "config item not found")
    assert broker.admin("config", "reset", "app=vmq_server") == (True, "Done")  # every key of the app
    values = broker.rows("show", "max_inflight_messages", "max_online_messages")[0]
    assert (values["max_inflight_messages"], values["max_online_messages"]) == ("20", "1000")


def test_log_show_config_and_level(broker):
    rows = {r["logger"]: r for r in broker.rows("log", "show", "config")}
    assert rows["consolefile"] == {"logger": "consolefile", "level": "info", "type": "file",
                                   "file": str(broker.log_path)}
    assert rows["console"]["type"] == "standard_io" and rows["default"]["level"] == "error"
    assert broker.admin("log", "level", "logger=consolefile") == \
        (False, "Usage: vmq-admin log level logger=<logger> level=<level>")
    assert broker.admin("log", "level", "logger=nope", "level=debug") == (False, "Error: logger nope not found")
    assert broker.admin("log", "level", "logger=consolefile", "level=debug") == (True, "Done")
    assert {r["logger"]: r["level"] for r in broker.rows("log", "show", "config")}["consolefile"] == "debug"
    wait_until(lambda: "Changed log level for Logger consolefile to debug" in broker.log_text(), what="log line")
    assert broker.admin("log", "level", "logger=consolefile", "level=info") == (True, "Done")


def test_metrics_reset(broker, cid):
    c = Paho(broker.port, cid)
    c.connect()
    c.publish(f"{cid}/t", "x", qos=1)

    def received() -> int:
        ok, out = broker.admin("metrics", "show")
        line = next(s for s in out.splitlines() if s.startswith("counter.mqtt_publish_received = "))
        return int(line.rsplit(" ", 1)[1])

    wait_until(lambda: received() >= 1, what="a counted publish")
    assert broker.admin("metrics", "reset") == (True, "Done")
    assert received() == 0
    c.disconnect()


def test_retain_delete_and_delete_expired(broker, cid):
    pub = Paho(broker.port, cid + "-p", version=V5)
    pub.connect()
    pub.publish(f"{cid}/keep", "k", qos=1, retain=True)
    pub.publish(f"{cid}/gone", "g", qos=1, retain=True)
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    pub.publish(f"{cid}/expires", "e", qos=1, retain=True, properties=props)
    wait_until(lambda: {r["topic"] for r in broker.rows("retain", "show", "--topic")} >= {f"{cid}/keep", f"{cid}/gone"},
               what="retained messages")
    assert broker.admin("retain", "delete") == (False, "No valid topic given.")
    assert broker.admin("retain", "delete", f"--topic={cid}/gone") == (True, "Done")
    topics = {r["topic"] for r in broker.rows("retain", "show", "--topic")}
    assert f"{cid}/gone" not in topics and f"{cid}/keep" in topics
    sub = Paho(broker.port, cid + "-s")
    sub.connect()
    sub.subscribe(f"{cid}/gone", 1)
    sub.subscribe(f"{cid}/keep", 1)
    assert [m.topic for m in sub.expect(1)] == [f"{cid}/keep"]
    # the expired one goes once its second is over: poll the command itself
    wait_until(lambda: broker.rows("retain", "delete-expired") == [{"expired": "1"}], what="expiry")
    assert f"{cid}/expires" not in {r["topic"] for r in broker.rows("retain", "show", "--topic")}
    assert broker.rows("retain", "delete-expired") == [{"expired": "0"}]
    for c in (pub, sub):
        c.disconnect()


def _online(broker, cid: str) -> set[str]:
    return {r["client_id"] for r in broker.rows("session", "show", "--is_online=true", "--client_id")
            if r["client_id"].startswith(cid)}


def test_session_disconnect_clients_and_batch(broker, cid):
    clients = {n: Raw(broker.port) for n in "abcde"}
    for n, c in clients.items():
        assert c.connect(f"{cid}-{n}", clean=False).reason_code == 0
    ok, out = broker.admin("session", "disconnect", "clients")
    assert not ok and out.startswith("Usage: vmq-admin session disconnect clients client-ids=")
    assert broker.admin("session", "disconnect", "clients", f"client-ids={cid}-a,{cid}-b") == (True, "Done")
    assert clients["a"].closed_by_broker() and clients["b"].closed_by_broker()
    wait_until(lambda: _online(broker, cid) == {f"{cid}-c", f"{cid}-d", f"{cid}-e"}, what="a and b gone")
    # a and b kept their sessions (no --cleanup); -c drops b's
    assert broker.admin("session", "disconnect", "clients", f"client-ids={cid}-b", "-c") == (True, "Done")
    assert f"{cid}-b" not in _sessions(broker, cid) and f"{cid}-a" in _sessions(broker, cid)

    others = {r["client_id"] for r in broker.rows("session", "show", "--is_online=true", "--client_id")} - \
        _online(broker, cid)
    assert not others, "other tests' clients would be disconnected by batch"
    assert broker.admin("session", "disconnect", "batch", "count=5", f"--filter-client-ids={cid}-c,{cid}-d") == \
        (True, "Done")
    assert clients["e"].closed_by_broker()
    wait_until(lambda: _online(broker, cid) == {f"{cid}-c", f"{cid}-d"}, what="e gone")
    assert broker.admin("session", "disconnect", "batch", "count=1", "--node=Other@host") == (True, "Done")
    assert broker.admin("session", "disconnect", "batch", "count=1") == (True, "Done")
    wait_until(lambda: len(_online(broker, cid)) == 1, what="one more gone")
    ok, out = broker.admin("session", "disconnect", "batch", "count=x")
    assert not ok and out.startswith("Usage: vmq-admin session disconnect batch count=")
    for c in clients.values():
        c.close()


def _sessions(broker, cid: str) -> set[str]:
    return {r["client_id"] for r in broker.rows("session", "show", "--client_id") if r["client_id"].startswith(cid)}


def test_session_unsubscribe(broker, cid):
    sub = Paho(broker.port, cid)
    sub.connect()
    sub.subscribe(f"{cid}/a", 1)
    sub.subscribe(f"{cid}/b", 1)
    assert broker.admin("session", "unsubscribe", f"client-id={cid}") == \
        (False, "Usage: vmq-admin session unsubscribe client-id=<ClientId> topic=<Topic>")
    assert broker.admin("session", "unsubscribe", f"client-id={cid}", f"topic={cid}/a") == (True, "Done")
    assert broker.admin("session", "unsubscribe", f"client-id={cid}", f"topic={cid}/a") == \
        (True, "Not successfull")
    assert broker.rows("session", "show", f"--client_id={cid}", "--topic") == [{"topic": f"{cid}/b"}]
    pub = Paho(broker.port, cid + "-p")
    pub.connect()
    pub.publish(f"{cid}/a", "no", qos=1)
    pub.publish(f"{cid}/b", "yes", qos=1)
    assert [m.payload for m in sub.expect(1)] == [b"yes"]
    for c in (sub, pub):
        c.disconnect()


def test_trace_stop_all(broker, cid):
    c = Paho(broker.port, cid)
    c.connect()
    result: list = []
    t = threading.Thread(target=lambda: result.append(broker.admin("trace", "client", f"client-id={cid}",
                                                                   "--trace-timeout=60000")))
    t.start()
    c.publish(f"{cid}/t", "traced", qos=1)

    def stopped() -> bool:
        broker.admin("trace", "stop_all")
        t.join(0.2)
        return not t.is_alive()

    wait_until(stopped, 20, "the trace to stop")
    ok, out = result[0]
    assert ok and out.endswith("Trace stopped") and "New session with peer" in out
    c.disconnect()


def test_tls_show_check_and_clear_pem_cache(make_broker, pki, cid):
    port = free_port()
    node = make_broker({"listener.ssl.default": f"127.0.0.1:{port}", "listener.ssl.default.certfile": pki.server_cert,
                        "listener.ssl.default.keyfile": pki.server_key, "listener.ssl.default.cafile": pki.ca})
    [row] = node.rows("tls", "show")
    assert row["File"] == pki.server_cert and row["CN"] == "localhost" and row["Issuer"] == "vmqpy test CA"
    assert row["SAN"] == "localhost,127.0.0.1" and row["Not_After"] > row["Not_Before"]
    [check] = node.rows("tls", "check")  # valid for 2 days: expires within the default 2 days
    assert check["File"] == pki.server_cert and 0 < int(check["SecExp"]) <= 172800 and int(check["SecToVal"]) <= 0
    assert node.admin("tls", "check", "--validity=3600") == (True, "All fine")

    c = Paho(port, cid)
    c.c.tls_set(ca_certs=pki.ca)
    c.connect()
    # replace the certificate: new connections get the new one after clear-pem-cache
    reissue(pki, "server", "renewed", "subjectAltName=IP:127.0.0.1\n")
    assert node.admin("tls", "clear-pem-cache") == (True, "Done")
    assert node.rows("tls", "show")[0]["CN"] == "renewed"
    import ssl

    ctx = ssl.create_default_context(cafile=pki.ca)
    with ssl_socket(ctx, port) as s:
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    assert cn == "renewed"
    assert c.c.is_connected()
    c.disconnect()


def ssl_socket(ctx, port: int):
    import socket

    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")


def test_node_stop_start_history_upgrade(make_broker, cid):
    node = make_broker()
    assert node.admin("node", "history") == (True, "empty_state")
    c = Paho(node.port, cid, clean=False)
    c.connect()
    c.subscribe(f"{cid}/t", 1)
    assert node.admin("node", "history") == (True, "existing_state")
    assert node.admin("node", "stop") == (True, "Done")
    assert c.disconnected.wait(10)
    c.c.loop_stop()
    assert {r["status"] for r in node.rows("listener", "show")} == {"stopped"}
    assert node.ping()
    assert node.admin("node", "start") == (True, "Done")
    again = Paho(node.port, cid, clean=False)
    assert again.connect()[1].session_present
    ok, out = node.admin("node", "upgrade")
    assert not ok and out.startswith("dry_run upgrade: not supported")
    assert node.rows("node", "swc_sync_status") == [{"SWC Partition": "metadata", "InitSynced": "true"}]
    ok, out = node.admin("node", "flag_as_init_synced")
    assert not ok and out.startswith("not needed")
    again.disconnect()


def test_with_two_workers_batch_counts_per_node_and_retain_delete_reaches_every_worker(make_broker, cid):
    from workerkit import on

    node = make_broker({"nr_of_workers": "2"})
    ids = [on(w, f"{cid}-{w}{i}", 2) for w in (0, 1) for i in range(2)]
    clients = {c: Raw(node.port) for c in ids}
    for client_id, c in clients.items():
        assert c.connect(client_id).reason_code == 0
    assert node.admin("session", "disconnect", "batch", "count=3") == (True, "Done")
    wait_until(lambda: len(_online(node, cid)) == 1, what="three of four gone, over both workers")

    pub = Paho(node.port, on(1, f"{cid}-pub", 2))
    pub.connect()
    pub.publish(f"{cid}/r", "x", qos=1, retain=True)
    wait_until(lambda: node.rows("retain", "show", "--topic") == [{"topic": f"{cid}/r"}], what="retained")
    assert node.admin("retain", "delete", f"--topic={cid}/r") == (True, "Done")
    wait_until(lambda: not node.rows("retain", "show", "--topic"), what="deleted")
    for w in (0, 1):  # every worker's trie forgot it
        sub = Paho(node.port, on(w, f"{cid}-sub", 2))
        sub.connect()
        sub.subscribe(f"{cid}/r", 1)
        sub.expect_none()
        sub.disconnect()
    pub.disconnect()


def test_with_two_workers_node_commands_answer_for_the_node(make_broker):
    node = make_broker({"nr_of_workers": "2"})
    assert node.rows("node", "swc_sync_status") == [{"SWC Partition": "metadata", "InitSynced": "true"}]
    assert node.admin("node", "history") == (True, "empty_state")
    assert node.admin("metrics", "reset") == (True, "Done")
    assert node.admin("log", "level", "logger=consolefile", "level=debug") == (True, "Done")
    assert {r["logger"]: r["level"] for r in node.rows("log", "show", "config")}["consolefile"] == "debug"
