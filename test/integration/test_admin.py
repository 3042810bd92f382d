"""vmq-admin core commands against a running node: sessions, listeners, config, metrics, retain, trace."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest
from broker import REPO, free_port, wait_until
from clients import Paho, Raw

from vmqpy.mqtt import packets as P


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a VerneMQ-style framed table."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return (cells[0], cells[1:]) if cells else ([], [])


def rows_of(node, *argv: str) -> list[dict[str, str]]:
    ok, out = node.admin(*argv)
    assert ok, out
    header, rows = table(out)
    return [dict(zip(header, row, strict=True)) for row in rows]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_usage_lists_the_commands(broker):
    ok, out = broker.admin()
    assert ok and out.startswith("Usage: vmq-admin <sub-command>")
    for group in ("session", "listener", "metrics", "retain", "trace", "api-key", "cluster"):
        assert f"\n    {group} " in out
    ok, out = broker.admin("session")
    assert ok and "disconnect" in out and "reauthorize" in out
    ok, out = broker.admin("no-such-command")
    assert not ok and "Usage: vmq-admin <sub-command>" in out
    ok, out = broker.admin("session", "disconnect", "--help")
    assert ok and "--cleanup" in out


def test_session_show_columns_filters_and_offline_sessions(broker, cid):
    online = Paho(broker.port, cid + "-on")
    online.connect()
    online.subscribe(f"{cid}/t", 1)
    offline = Paho(broker.port, cid + "-off", clean=False)
    offline.connect()
    offline.subscribe(f"{cid}/t", 1)
    offline.disconnect()
    online.publish(f"{cid}/t", "queued", 1)

    [row] = rows_of(broker, "session", "show", f"--client_id={cid}-on")
    assert set(row) == {"client_id", "is_online", "mountpoint", "peer_host", "peer_port", "user"}
    assert (row["is_online"], row["peer_host"]) == ("true", "127.0.0.1")

    [row] = rows_of(broker, "session", "show", f"--client_id={cid}-off", "--client_id", "--queue_size",
                    "--is_online")
    assert row == {"client_id": f"{cid}-off", "is_online": "false", "queue_size": "1"}
    offline_ids = [r["client_id"] for r in rows_of(broker, "session", "show", "--is_online=false",
                                                    "--client_id")]
    assert f"{cid}-off" in offline_ids and f"{cid}-on" not in offline_ids

    subs = rows_of(broker, "session", "show", f"--client_id={cid}-on", "--topic", "--qos")
    assert subs == [{"topic": f"{cid}/t", "qos": "1"}]
    assert len(rows_of(broker, "session", "show", "--limit=1")) == 1
    ok, out = broker.admin("session", "show", "--bogus")
    assert not ok and "invalid flag --bogus" in out
    online.disconnect()


def test_session_disconnect_and_cleanup(broker, cid):
    client = Paho(broker.port, cid, clean=False)
    client.connect()
    client.subscribe(f"{cid}/x", 1)
    ok, out = broker.admin("session", "disconnect", f"client-id={cid}")
    assert (ok, out) == (True, "Done")
    assert client.disconnected.wait(10)
    client.c.loop_stop()
    [row] = rows_of(broker, "session", "show", f"--client_id={cid}", "--is_online", "--topic")
    assert row == {"is_online": "false", "topic": f"{cid}/x"}  # kept: no --cleanup

    again = Paho(broker.port, cid, clean=False)
    again.connect()
    assert broker.admin("session", "disconnect", f"client-id={cid}", "--cleanup") == (True, "Done")
    assert again.disconnected.wait(10)
    again.c.loop_stop()
    wait_until(lambda: not rows_of(broker, "session", "show", f"--client_id={cid}"), what="session removed")
    ok, out = broker.admin("session", "disconnect")
    assert not ok and out.startswith("Usage: vmq-admin session disconnect")


def test_session_reauthorize_drops_subscriptions_the_acl_now_refuses(make_broker, cid):
    node = make_broker({"vmq_acl.acl_reload_interval": "1"}, acl="topic re/#\n")
    client = Paho(node.port, cid)
    client.connect()
    client.subscribe("re/a", 1)
    assert rows_of(node, "session", "show", f"--client_id={cid}", "--topic") == [{"topic": "re/a"}]
    assert node.admin("session", "reauthorize", "username=u", f"client-id={cid}") == (True, "Unchanged")
    (node.root / "vmq.acl").write_text("topic other/#\n")
    wait_until(lambda: node.admin("session", "reauthorize", "username=u", f"client-id={cid}")[1] == "Done",
               what="ACL reload and reauthorization")
    assert rows_of(node, "session", "show", f"--client_id={cid}", "--topic") == []
    client.disconnect()


def test_listener_stop_keeps_clients_start_restarts_kill_sessions_kicks(make_broker, cid):
    node = make_broker()
    addr = ("address=127.0.0.1", f"port={node.port}")
    client = Paho(node.port, cid)
    client.connect()
    client.subscribe(f"{cid}/l", 0)
    assert node.admin("listener", "stop", *addr) == (True, "Done")
    [row] = [r for r in rows_of(node, "listener", "show") if r["type"] == "mqtt"]
    assert row["status"] == "stopped"
    assert refused(node.port)
    client.publish(f"{cid}/l", "still here")
    assert client.expect(1)[0].payload == b"still here"

    assert node.admin("listener", "start", *addr) == (True, "Done")
    late = Paho(node.port, cid + "-late")
    late.connect()
    assert node.admin("listener", "stop", *addr, "--kill_sessions") == (True, "Done")
    assert client.disconnected.wait(10) and late.disconnected.wait(10)
    ok, out = node.admin("listener", "stop", "address=127.0.0.1", "port=1")
    assert not ok and "no listener" in out


def test_listener_start_new_and_delete(make_broker, cid):
    node = make_broker()
    port = free_port()
    addr = ("address=127.0.0.1", f"port={port}")
    assert node.admin("listener", "start", *addr, "--mountpoint=mp") == (True, "Done")
    row = [r for r in rows_of(node, "listener", "show") if r["port"] == str(port)]
    assert row and row[0]["mountpoint"] == "mp" and row[0]["status"] == "running"
    client = Paho(port, cid)
    client.connect()
    [s] = rows_of(node, "session", "show", f"--client_id={cid}", "--mountpoint")
    assert s == {"mountpoint": "mp"}
    client.disconnect()
    assert node.admin("listener", "delete", *addr) == (True, "Done")
    assert refused(port)
    assert not [r for r in rows_of(node, "listener", "show") if r["port"] == str(port)]


def test_set_changes_runtime_config_for_new_sessions(make_broker, cid):
    node = make_broker()
    assert node.admin("set", "max_inflight_messages=1") == (True, "")
    assert rows_of(node, "show", "max_inflight_messages") == [
        {"node": "VerneMQ@127.0.0.1", "max_inflight_messages": "1"}]
    sub = Raw(node.port)
    sub.connect(cid)
    sub.send(P.Subscribe(1, [(f"{cid}/q", P.SubOpts(1))]))
    assert isinstance(sub.recv(), P.Suback)
    pub = Paho(node.port, cid + "-pub")
    pub.connect()
    for i in range(3):
        pub.publish(f"{cid}/q", str(i), 1)
    first = sub.recv()
    assert first.payload == b"0"
    with pytest.raises(TimeoutError):
        sub.recv(timeout=0.5)  # the window of 1 is full until the PUBACK
    sub.send(P.Puback(first.packet_id))
    assert sub.recv().payload == b"1"
    sub.close()

    ok, out = node.admin("set", "nodename=x@y")
    assert not ok and "cannot be changed at runtime" in out
    ok, out = node.admin("set", "max_inflight_messages=lots")
    assert not ok and "expected an integer" in out
    ok, out = node.admin("show", "no_such_key")
    assert not ok


def test_metrics_show_with_descriptions(broker, cid):
    ok, out = broker.admin("metrics", "show")
    assert ok and "counter.mqtt_publish_received = " in out and "gauge.retain_messages = " in out
    ok, out = broker.admin("metrics", "show", "--with-descriptions")
    lines = out.splitlines()
    i = lines.index(next(line for line in lines if line.startswith("counter.mqtt_publish_received")))
    assert lines[i - 1] == "# The number of PUBLISH packets received."


def test_retain_show(broker, cid):
    client = Paho(broker.port, cid)
    client.connect()
    client.publish(f"{cid}/r1", "one", 1, retain=True)
    client.publish(f"{cid}/r2", "two", 1, retain=True)
    rows = rows_of(broker, "retain", "show", f"--topic={cid}/r2")
    assert rows == [{"payload": "two", "topic": f"{cid}/r2"}]
    topics = [r["topic"] for r in rows_of(broker, "retain", "show", "--topic", "--limit=1000")]
    assert {f"{cid}/r1", f"{cid}/r2"} <= set(topics)
    assert len(rows_of(broker, "retain", "show", "--limit=1")) == 1
    client.disconnect()


def test_node_status_and_cluster_show(broker, cid):
    client = Paho(broker.port, cid)
    client.connect()
    [status] = rows_of(broker, "node", "status")
    assert status["node"] == "VerneMQ@127.0.0.1" and status["status"] == "running"
    assert int(status["connections"]) >= 1
    assert rows_of(broker, "cluster", "show") == [{"Node": "VerneMQ@127.0.0.1", "Running": "true"}]
    client.disconnect()


def test_trace_client_records_both_directions_and_detaches(broker, cid):
    client = Paho(broker.port, cid)
    client.connect()
    client.subscribe(f"{cid}/tr", 1)
    result: list = []
    done = threading.Event()

    def trace():
        result.append(broker.admin("trace", "client", f"client-id={cid}", "--max-packets=6",
                                   "--trace-timeout=8000"))
        done.set()

    threading.Thread(target=trace, daemon=True).start()
    while not done.wait(0.05):  # keep traffic flowing until the trace has seen enough
        client.publish(f"{cid}/tr", "traced", 1)
    ok, out = result[0]
    assert ok
    assert 'New session with peer 127.0.0.1:' in out
    assert f'MQTT RECV: CID: "{cid}" PUBLISH(d0, q1, r0, m' in out and "traced" in out
    assert f'MQTT SEND: CID: "{cid}" PUBACK(m' in out
    assert f'MQTT SEND: CID: "{cid}" PUBLISH(' in out
    # the tap is gone: the session keeps working
    client.messages.queue.clear()
    client.publish(f"{cid}/tr", "after", 1)
    wait_until(lambda: any(m.payload == b"after" for m in list(client.messages.queue)), what="delivery")
    ok, out = broker.admin("trace", "client", "client-id=nobody-here", "--trace-timeout=100")
    assert ok and out.startswith('No sessions found for client "nobody-here"')
    client.disconnect()


def test_api_key_create_add_show_delete(broker):
    ok, key = broker.admin("api-key", "create")
    assert ok and len(key) == 32 and key.isalnum()
    assert broker.admin("api-key", "add", "key=my-own-key", "scope=status") == (True, "Done")
    rows = {r["Key"]: r for r in rows_of(broker, "api-key", "show")}
    assert rows[key]["Scope"] == "mgmt" and rows[key]["Expires (UTC)"] == "never"
    assert rows["my-own-key"]["Scope"] == "status" and rows["my-own-key"]["has expired"] == "false"
    assert broker.admin("api-key", "delete", f"key={key}") == (True, "Done")
    assert key not in {r["Key"] for r in rows_of(broker, "api-key", "show")}
    ok, out = broker.admin("api-key", "add", "key=x", "scope=everything")
    assert not ok and "unknown scope" in out


def test_bin_vmq_admin_subprocess(broker, cid):
    client = Paho(broker.port, cid)
    client.connect()
    vmq_admin = [str(REPO / "bin" / "vmq-admin"), "--config", str(broker.conf_path)]
    out = subprocess.run([*vmq_admin, "session", "show", f"--client_id={cid}"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert table(out.stdout)[1][0][0] == cid
    out = subprocess.run([*vmq_admin, "bogus"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Usage: vmq-admin <sub-command>" in out.stdout
    client.disconnect()


def test_format_json_on_tables_text_and_errors(broker, cid):
    import json

    client = Paho(broker.port, cid)
    client.connect()
    ok, out = broker.admin("session", "show", f"--client_id={cid}", "--client_id", "--is_online",
                           "--format=json")
    assert ok and json.loads(out) == {"type": "table", "table": [{"client_id": cid, "is_online": True}]}
    ok, out = broker.admin("listener", "show", "--mqtt", "--format=json")
    [row] = [r for r in json.loads(out)["table"] if r["port"] == broker.port]  # a number, as VerneMQ's
    assert row["address"] == "127.0.0.1" and row["all_conns"] >= 1 and row["type"] == "mqtt"
    assert row["allowed_protocol_versions"] == "3,4,5,131,132" and row["allow_anonymous_override"] is False
    ok, out = broker.admin("show", "max_inflight_messages", "--format=json")
    assert ok and json.loads(out)["type"] == "table"
    ok, out = broker.admin("session", "show", "--nonsense", "--format=json")
    assert not ok and json.loads(out)["type"] == "alert"
    ok, out = broker.admin("listener", "show", "--format=xml")
    assert not ok and "--format" in out
    text = subprocess.run([str(REPO / "bin" / "vmq-admin"), "--config", str(broker.conf_path), "listener",
                           "show", "--format=json"], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and json.loads(text.stdout)["type"] == "table"
    client.disconnect()


def test_session_show_has_vernemqs_fields_regex_filters_and_drops(make_broker, cid):
    node = make_broker({"max_online_messages": "2", "max_offline_messages": "2"})
    sub = Paho(node.port, f"{cid}-sensor-1", clean=False)
    sub.connect()
    sub.subscribe(f"{cid}/t", 1)
    sub.drop()  # offline: its queue keeps 2 messages and drops the rest
    pub = Paho(node.port, f"{cid}-pub")
    pub.connect()
    for n in range(5):
        pub.publish(f"{cid}/t", f"m{n}", 1)
    fields = ["queue_pid", "session_pid", "is_offline", "statename", "deliver_mode", "is_plugin",
              "queue_started_at", "session_started_at", "queue_size", "dropped"]
    [row] = rows_of(node, "session", "show", f"--client_id=~^{cid}-sensor", *(f"--{f}" for f in fields))
    assert row["is_offline"] == "true" and row["statename"] == "offline" and row["deliver_mode"] == "fanout"
    assert row["queue_size"] == "2" and row["dropped"] == "3" and row["is_plugin"] == "false"
    assert row["queue_pid"].startswith("<") and int(row["queue_started_at"]) > 0
    [online] = rows_of(node, "session", "show", f"--client_id=~{cid}-p.b", "--session_pid", "--session_started_at",
                       "--statename")
    assert online["statename"] == "online" and online["session_pid"] and int(online["session_started_at"]) > 0
    subs = rows_of(node, "session", "show", f"--client_id={cid}-sensor-1", "--topic", "--rap", "--no_local")
    assert subs == [{"topic": f"{cid}/t", "rap": "false", "no_local": "false"}]
    msgs = rows_of(node, "session", "show", f"--client_id={cid}-sensor-1", "--routing_key", "--payload",
                   "--msg_qos")
    assert [(m["routing_key"], m["msg_qos"]) for m in msgs] == [(f"{cid}/t", "1")] * 2
    assert rows_of(node, "session", "show", "--client_id=~^nobody-") == []
    ok, out = node.admin("session", "show", "--client_id=~(")
    assert not ok and "regexp" in out
    pub.disconnect()
