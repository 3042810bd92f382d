"""Helpers for the auth/ACL/webhooks integration tests: exact CONNACK/SUBACK/PUBACK codes
through raw frames, and the real vmq-passwd tool."""

from __future__ import annotations

import itertools
import subprocess

from broker import REPO
from clients import Raw

from vmqpy.mqtt import packets as P

VMQ_PASSWD = str(REPO / "bin" / "vmq-passwd")
V3, V5 = 4, 5  # protocol levels
# The CONNACK answers of the issue, per protocol level.
BAD_CREDENTIALS = {V3: 4, V5: 0x86}
NOT_AUTHORIZED = {V3: 5, V5: 0x87}
SUB_REFUSED = {V3: 0x80, V5: 0x87}

_pids = itertools.count(1)


def vmq_passwd(path, user: str, password: str, *flags: str) -> None:
    """Add or change a user with bin/vmq-passwd (the password read twice from stdin)."""
    subprocess.run([VMQ_PASSWD, *flags, str(path), user], input=f"{password}\n{password}\n", text=True,
                   check=True, capture_output=True, timeout=30)


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def connack(port: int, version: int, client_id: str, username: str | None = None,
            password: str | bytes | None = None) -> int | None:
    """The CONNACK code the broker answers, None if it closed without one."""
    raw = Raw(port, version)
    try:
        ack = raw.connect(client_id, username=username, password=_bytes(password))
        return None if ack is None else ack.reason_code
    finally:
        raw.close()


def connected(port: int, version: int, client_id: str, username: str | None = None,
              password: str | bytes | None = None) -> Raw:
    raw = Raw(port, version)
    ack = raw.connect(client_id, username=username, password=_bytes(password))
    assert ack is not None and ack.reason_code == 0, ack
    return raw


def next_of(raw: Raw, kind: type):
    """The next packet of `kind` (deliveries arriving in between are skipped)."""
    while True:
        packet = raw.recv()
        assert packet is not None, f"connection closed while waiting for {kind.__name__}"
        if isinstance(packet, kind):
            return packet


def subscribe(raw: Raw, *filters: str | tuple[str, int], qos: int = 1) -> list[int]:
    """SUBACK reason codes of one SUBSCRIBE; a filter may come as (filter, qos)."""
    pid = next(_pids) % 0xFFFF + 1
    entries = [f if isinstance(f, tuple) else (f, qos) for f in filters]
    raw.send(P.Subscribe(pid, [(f, P.SubOpts(q)) for f, q in entries]))
    return next_of(raw, P.Suback).reason_codes


def publish(raw: Raw, topic: str, payload: bytes = b"x") -> int:
    """Publish at QoS 1; the PUBACK reason code (always 0 for v3)."""
    pid = next(_pids) % 0xFFFF + 1
    raw.send(P.Publish(topic, payload, qos=1, packet_id=pid))
    return next_of(raw, P.Puback).reason_code
