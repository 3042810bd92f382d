"""nr_of_workers > 1: real nodes whose clients land on different worker processes (docs/workers.md)."""

from __future__ import annotations

import itertools
import os
import select
import signal
import subprocess
import sys

import pytest
import workerkit
from broker import REPO, wait_until
from clients import Paho, Raw
from workerkit import worker_pids

from vmqpy.cluster import links as iw
from vmqpy.cluster.accept import owner
from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import encode

WORKERS = 3


def connect(b, worker: int, prefix: str, workers: int = WORKERS, **kw) -> Paho:
    return workerkit.connect(b, worker, prefix, workers, **kw)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from broker import Broker

    b = Broker(tmp_path_factory.mktemp("workers"), {"nr_of_workers": str(WORKERS),
                                                     "shared_subscription_policy": "random",
                                                     "max_online_messages": "10000"}).start()
    yield b
    b.stop()
    b.cleanup()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publisher_and_subscriber_on_different_workers(node, cid, qos):
    sub = connect(node, 1, f"{cid}-s")
    assert sub.subscribe(f"{cid}/t", qos)[0].value == qos
    pub = connect(node, 0, f"{cid}-p")
    for i in range(50):
        pub.publish(f"{cid}/t", str(i), qos)
    got = sub.expect(50)
    assert [m.payload for m in got] == [str(i).encode() for i in range(50)]
    assert {m.qos for m in got} == {qos}
    ok, sessions = node.admin("session", "show", "--client_id", "--limit=1000")
    assert ok and sub.c._client_id.decode() in sessions and pub.c._client_id.decode() in sessions
    pub.disconnect()
    sub.disconnect()


def test_wildcards_across_workers(node, cid):
    plus = connect(node, 1, f"{cid}-plus")
    plus.subscribe(f"{cid}/+/x", 1)
    hash_ = connect(node, 2, f"{cid}-hash")
    hash_.subscribe(f"{cid}/#", 1)
    pub = connect(node, 0, f"{cid}-p")
    pub.publish(f"{cid}/a/x", "1", 1)
    pub.publish(f"{cid}/a/y", "2", 1)
    assert [m.topic for m in plus.expect(1)] == [f"{cid}/a/x"]
    assert [m.topic for m in hash_.expect(2)] == [f"{cid}/a/x", f"{cid}/a/y"]
    plus.unsubscribe(f"{cid}/+/x")
    pub.publish(f"{cid}/b/x", "3", 1)
    assert hash_.expect(1)[0].topic == f"{cid}/b/x"
    plus.expect_none()
    for c in (plus, hash_, pub):
        c.disconnect()


def test_retained_set_on_one_worker_seen_and_cleared_everywhere(node, cid):
    topic = f"{cid}/r"
    setter = connect(node, 0, f"{cid}-set")
    setter.publish(topic, "kept", 1, retain=True)
    for w in (1, 2):
        sub = connect(node, w, f"{cid}-sub{w}")
        sub.subscribe(topic, 1)
        m = sub.expect(1)[0]
        assert (m.payload, m.retain) == (b"kept", True)
        sub.disconnect()
    clearer = connect(node, 1, f"{cid}-clear")
    clearer.publish(topic, "", 1, retain=True)
    for w in (0, 1, 2):
        sub = connect(node, w, f"{cid}-after{w}")
        sub.subscribe(topic, 1)
        sub.expect_none()
        sub.disconnect()
    setter.disconnect()
    clearer.disconnect()


def test_takeover_stays_on_the_owning_worker(node, cid):
    first = connect(node, 2, cid)
    second = Paho(node.port, first.c._client_id.decode())
    second.connect()
    assert first.disconnected.wait(10)
    ok, out = node.admin("session", "show", f"--client_id={second.c._client_id.decode()}", "--num_sessions")
    assert ok and out.count("| 1 ") == 1, out
    second.disconnect()


def test_shared_subscription_members_on_different_workers(node, cid):
    members = [connect(node, w, f"{cid}-m{w}") for w in (0, 1)]
    for m in members:
        m.subscribe(f"$share/g/{cid}/s", 1)
    pub = connect(node, 2, f"{cid}-p")
    for i in range(200):
        pub.publish(f"{cid}/s", str(i), 1, wait=False)
    got: list[bytes] = []
    counts = []
    wait_until(lambda: _drain(members, got, counts) >= 200, 15, "shared deliveries")
    assert sorted(got, key=int) == [str(i).encode() for i in range(200)]  # each exactly once
    assert all(counts), counts  # both workers' members got some
    for c in (*members, pub):
        c.disconnect()


def _drain(clients: list[Paho], got: list[bytes], counts: list[int]) -> int:
    counts[:] = counts or [0] * len(clients)
    for i, c in enumerate(clients):
        while not c.messages.empty():
            got.append(c.messages.get().payload)
            counts[i] += 1
    return len(got)


def test_will_crosses_workers(node, cid):
    sub = connect(node, 1, f"{cid}-s")
    sub.subscribe(f"{cid}/will", 1)
    dying = Paho(node.port, workerkit.on(0, f"{cid}-d", WORKERS)).will(f"{cid}/will", b"gone", 1)
    dying.connect()
    dying.drop()
    assert sub.expect(1)[0].payload == b"gone"
    sub.disconnect()


def test_ordering_5000_qos1_across_workers(node, cid):
    sub = connect(node, 2, f"{cid}-s")
    sub.subscribe(f"{cid}/o", 1)
    pub = connect(node, 1, f"{cid}-p")
    infos = [pub.publish(f"{cid}/o", str(i), 1, wait=False) for i in range(5000)]
    got = [m.payload for m in sub.expect(5000, timeout=60)]
    assert got == [str(i).encode() for i in range(5000)]
    infos[-1].wait_for_publish(10)
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("with_v5", [False, True], ids=["v3-only", "v3-and-v5"])
def test_qos0_bursts_from_two_workers_arrive_whole_and_in_order(node, cid, with_v5):
    """Bursts of v3 QoS 0 publishes travel between workers as runs of frames: written as they are
    to v3 subscribers, routed one by one when a v5 subscriber needs its own encoding."""
    subs = [connect(node, 2, f"{cid}-s3")]
    if with_v5:
        subs.append(connect(node, 2, f"{cid}-s5", version=5))
    for s in subs:
        s.subscribe(f"{cid}/in/+", 0)
    pubs = []
    for w in (0, 1):
        raw = Raw(node.port)
        assert raw.connect(workerkit.on(w, f"{cid}-p{w}", WORKERS)).reason_code == 0
        pubs.append(raw)
    n = 3000
    for w, raw in enumerate(pubs):
        raw.send(b"".join(encode(P.Publish(f"{cid}/in/{w}", f"{w}:{i}".encode()), 4) for i in range(n)))
    for s in subs:
        got = [(m.topic, m.payload) for m in s.expect(2 * n, timeout=30)]
        for w in (0, 1):
            assert [p for t, p in got if t == f"{cid}/in/{w}"] == [f"{w}:{i}".encode() for i in range(n)]
        s.disconnect()
    for raw in pubs:
        raw.close()


def test_a_stopped_worker_holds_back_the_publishers_that_forward_to_it(make_broker, cid):
    """Backpressure between workers: while the subscriber's worker takes nothing in (SIGSTOP), the
    publisher's worker stops reading once the link's buffer is full, rather than queueing without
    bound; once it runs again, every message arrives, in order."""
    b = make_broker({"nr_of_workers": "2", "max_online_messages": "-1"})
    sub = connect(b, 1, f"{cid}-s", 2)
    sub.subscribe(f"{cid}/bp", 0)
    pub = Raw(b.port)
    assert pub.connect(workerkit.on(0, f"{cid}-p", 2)).reason_code == 0
    stopped = worker_pids(b)[1][0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        body = b"x" * 4096
        sent, rest = 0, b""
        pub.sock.setblocking(False)
        while sent < 16384:  # 64 MiB: far beyond the link's and the sockets' buffers
            if not rest:
                rest = encode(P.Publish(f"{cid}/bp", b"%08d" % sent + body), 4)
                sent += 1
            if not select.select([], [pub.sock], [], 1.0)[1]:
                break  # nothing taken for a second: the publisher is held back
            rest = rest[pub.sock.send(rest):]
        assert sent < 16384, "the publisher's worker kept reading while the link was full"
    finally:
        os.kill(stopped, signal.SIGCONT)
    pub.sock.setblocking(True)
    pub.sock.sendall(rest)
    got = [m.payload[:8] for m in sub.expect(sent, timeout=60)]
    assert got == [b"%08d" % i for i in range(sent)]
    pub.close()
    sub.disconnect()


def _stored_elsewhere(make_broker, cid: str):
    """A node of 2 workers, an offline persistent subscriber on worker 1, a raw publisher on worker 0."""
    b = make_broker({"nr_of_workers": "2"})
    sub = connect(b, 1, f"{cid}-s", 2, clean=False)
    sub.subscribe(f"{cid}/d", 1)
    sub.disconnect()
    pub = Raw(b.port)
    assert pub.connect(workerkit.on(0, f"{cid}-p", 2), clean=False).reason_code == 0
    return b, sub.c._client_id.decode(), pub


def _restarted(b, old_pid: int) -> None:
    wait_until(lambda: worker_pids(b)[1][0] != old_pid and b.ping(), 30, "worker 1 back")


def _subscriber_back(b, sid: str, expected: list[bytes]) -> Paho:
    """The persistent subscriber reconnected, after receiving exactly `expected`."""
    back = Paho(b.port, sid, clean=False)
    back.connect()
    assert [m.payload for m in back.expect(len(expected))] == expected
    return back


def _socket_timeout(pub: Raw, seconds: float) -> bool:
    try:
        pub.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def test_qos1_across_workers_is_acked_once_stored(make_broker, cid):
    """The publisher's PUBACK waits until the subscriber's worker stored the message: with that
    worker stopped there is none; after it resumes, the ack comes and the message survives
    SIGKILL of that worker."""
    b, sid, pub = _stored_elsewhere(make_broker, cid)
    stopped = worker_pids(b)[1][0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        pub.send(P.Publish(f"{cid}/d", b"kept", qos=1, packet_id=7))
        assert _socket_timeout(pub, 1.0), "acked while the subscriber's worker could not store it"
    finally:
        os.kill(stopped, signal.SIGCONT)
    ack = pub.recv()
    assert isinstance(ack, P.Puback) and ack.packet_id == 7
    os.kill(stopped, signal.SIGKILL)
    _restarted(b, stopped)
    _subscriber_back(b, sid, [b"kept"]).disconnect()
    pub.close()


def test_unconfirmed_publish_is_not_acked_and_arrives_when_resent(make_broker, cid):
    """The subscriber's worker dies before storing: the publisher is disconnected without a
    PUBACK, and the resend after reconnecting is delivered."""
    b, sid, pub = _stored_elsewhere(make_broker, cid)
    stopped = worker_pids(b)[1][0]
    os.kill(stopped, signal.SIGSTOP)
    publish = P.Publish(f"{cid}/d", b"again", qos=1, packet_id=9)
    pub.send(publish)
    os.kill(stopped, signal.SIGKILL)
    assert pub.closed_by_broker()
    assert not any(isinstance(p, P.Puback) for p in pub.inbox)
    _restarted(b, stopped)
    again = Raw(b.port)
    assert again.connect(workerkit.on(0, f"{cid}-p", 2), clean=False).session_present
    publish.dup = True
    again.send(publish)
    assert isinstance(again.recv(), P.Puback)
    _subscriber_back(b, sid, [b"again"]).disconnect()
    again.close()


def test_publishes_for_a_restarting_worker_wait_for_it(make_broker, cid):
    """While the subscriber's worker is down (the parent stopped, so it is not restarted yet), a
    QoS 1 publish for it and a retained message whose topic it owns wait on the publisher's
    worker: no PUBACK until it is back, then both arrive."""
    b, sid, pub = _stored_elsewhere(make_broker, cid)
    topic = next(t for i in itertools.count() if owner("", t := f"{cid}/kept/{i}", 2) == 1)
    down = worker_pids(b)[1][0]
    link = f"{b.admin_socket}.w0.link"
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        os.kill(down, signal.SIGKILL)
        wait_until(lambda: "not linked to every other worker" in iw.ask(link, (iw.T_STATS,))["health"],
                   10, "worker 0 sees worker 1 gone")
        pub.send(P.Publish(f"{cid}/d", b"waited", qos=1, packet_id=3))
        pub.send(P.Publish(topic, b"retained", qos=1, retain=True, packet_id=4))
        assert _socket_timeout(pub, 1.0), "acked while the subscriber's worker was down"
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    assert {a.packet_id for a in (pub.recv(), pub.recv())} == {3, 4}
    back = _subscriber_back(b, sid, [b"waited"])
    back.subscribe(topic, 1)
    assert [m.payload for m in back.expect(1)] == [b"retained"]
    back.disconnect()
    pub.close()


def test_metrics_are_summed_over_workers(node, cid):
    ok, out = node.admin("metrics", "show")
    assert ok
    received = int(next(line for line in out.splitlines() if ".mqtt_publish_received = " in line).split()[-1])
    assert received >= 5000  # the ordering test's publishes, made on one worker, count in the sum


def test_offline_messages_survive_restart(make_broker, cid):
    b = make_broker({"nr_of_workers": "2"})
    sub = connect(b, 1, f"{cid}-s", 2, clean=False)
    sub.subscribe(f"{cid}/p", 1)
    sub.disconnect()
    pub = connect(b, 0, f"{cid}-p", 2)
    for i in range(10):
        pub.publish(f"{cid}/p", str(i), 1)
    pub.disconnect()
    sid = sub.c._client_id.decode()
    wait_until(lambda: "| 10 " in b.admin("session", "show", f"--client_id={sid}", "--offline_messages")[1],
               10, "offline messages stored on the subscriber's worker")
    b.restart()
    back = Paho(b.port, sid, clean=False)
    _, flags, _ = back.connect()
    assert flags.session_present
    assert [m.payload for m in back.expect(10)] == [str(i).encode() for i in range(10)]
    back.disconnect()


def test_killed_worker_is_restarted(make_broker, cid):
    b = make_broker({"nr_of_workers": "2"})
    old = worker_pids(b)
    os.kill(old[1][0], signal.SIGKILL)
    wait_until(lambda: (p := worker_pids(b))[1][0] != old[1][0] and p[1][1] and b.ping(), 30, "worker 1 back")
    assert worker_pids(b)[0] == old[0]  # the other worker kept running
    sub = connect(b, 1, f"{cid}-s", 2)
    sub.subscribe(f"{cid}/k", 1)
    pub = connect(b, 0, f"{cid}-p", 2)
    pub.publish(f"{cid}/k", "alive", 1)
    assert sub.expect(1)[0].payload == b"alive"
    pub.disconnect()
    sub.disconnect()


def test_vernemq_stop_stops_every_process(make_broker):
    b = make_broker({"nr_of_workers": "2"})
    pids = [pid for pid, _ in worker_pids(b).values()]
    stop = subprocess.Popen([sys.executable, "-m", "vmqpy.scripts.vernemq", "--config", str(b.conf_path), "stop"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert b.proc.wait(30) == 0  # reaped here, or `stop` would see a zombie as alive
    assert stop.communicate(timeout=30)[0].strip() == "ok" and stop.returncode == 0
    for pid in pids:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), 10, f"worker {pid} gone")
