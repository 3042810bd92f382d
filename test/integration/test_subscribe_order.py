"""A subscription is in effect for every PUBLISH read after its SUBSCRIBE, from any connection.

The subscriber sends SUBSCRIBE and the publisher sends PUBLISH right after, without waiting for
the SUBACK: the subscriber must get the message, every round (wakeups.Wakeups; with workers,
cluster/subscribe_clock.py).
"""

from __future__ import annotations

import mmap
import time

import pytest
import workerkit
from broker import Broker
from clients import Raw
from workerkit import worker_pids

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import encode

ROUNDS = 200


def expect_delivered(sub: Raw, pub: Raw, version: int, before_publish=lambda: None) -> None:
    missed = []
    for i in range(ROUNDS):
        topic = f"order/{version}/{i}"
        sub.send(encode(P.Subscribe(i + 1, [(topic, P.SubOpts(0))]), version))
        before_publish()
        pub.send(encode(P.Publish(topic, b"m", 0), version))
        if not delivered(sub, topic):
            missed.append(topic)
    assert not missed, f"{len(missed)} of {ROUNDS} messages published right after the SUBSCRIBE missed"


def delivered(sub: Raw, topic: str) -> bool:
    """Read the round's SUBACK and its message; False if the SUBACK came and then nothing."""
    acked = False
    while True:
        try:
            p = sub.recv(timeout=1.0 if acked else 10.0)
        except TimeoutError:
            return False
        assert p is not None, "the broker closed the subscriber"
        if p.type == P.PUBLISH:
            assert p.topic == topic
            if acked:
                return True
            acked = None  # the message overtook the SUBACK: read that too
        elif p.type == P.SUBACK:
            if acked is None:
                return True
            acked = True


@pytest.mark.parametrize("version", [4, 5])
def test_one_process(broker, version):
    sub, pub = Raw(broker.port, version), Raw(broker.port, version)
    sub.connect(f"order-sub-{version}")
    pub.connect(f"order-pub-{version}")
    try:
        expect_delivered(sub, pub, version)
    finally:
        sub.close()
        pub.close()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("order"), {"nr_of_workers": "2"}).start()
    yield b
    b.stop()
    b.cleanup()


def raw_on(b: Broker, worker: int, prefix: str) -> Raw:
    c = Raw(b.port, 4)
    c.connect(workerkit.on(worker, prefix, 2))
    return c


def test_workers_same_worker(two_workers):
    sub, pub = raw_on(two_workers, 1, "same-sub"), raw_on(two_workers, 1, "same-pub")
    try:
        expect_delivered(sub, pub, 4)
    finally:
        sub.close()
        pub.close()


def subscribe_clock(b: Broker) -> memoryview:
    """The workers' SUBSCRIBE counts, as they share them (the fd after --clock of a worker)."""
    pid = worker_pids(b)[0][0]
    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    fd = int(argv[argv.index(b"--clock") + 1])
    with open(f"/proc/{pid}/fd/{fd}", "rb") as f:
        return memoryview(mmap.mmap(f.fileno(), 16, prot=mmap.PROT_READ)).cast("q")


def test_workers_read_by_another_worker(two_workers):
    """Worker 1 has read the SUBSCRIBE (its count moved) before worker 0 reads the PUBLISH: worker 0
    routes it to worker 1 although the T_SUB may still be on its way."""
    clock = subscribe_clock(two_workers)
    sub, pub = raw_on(two_workers, 1, "other-sub"), raw_on(two_workers, 0, "other-pub")

    seen = [clock[1]]

    def read_by_worker_1() -> None:
        # Spin, not poll: the PUBLISH must leave while worker 1's T_SUB may still be on its way.
        deadline = time.monotonic() + 10
        while clock[1] == seen[0]:
            assert time.monotonic() < deadline, "worker 1 did not read the SUBSCRIBE"
        seen[0] = clock[1]

    try:
        expect_delivered(sub, pub, 4, read_by_worker_1)
    finally:
        sub.close()
        pub.close()
