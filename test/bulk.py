"""Bulk MQTT traffic for store tests: pipelined raw-socket publishers and subscribers.

paho waits on its own loop thread for each message; these helpers keep a window
of QoS 1/2 packets in flight on one socket and answer acks in batches, so tens of
thousands of messages take seconds. Payloads are sequence numbers (b"0", b"1", ...)
unless a payload is given, so a test can check order and completeness.
"""

from __future__ import annotations

import re

from clients import Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import encode

V311 = P.MQTT311


def _batch(c: Raw, timeout: float) -> list:
    """Every packet of the next read (at least one); fails if the broker closed."""
    first = c.recv(timeout)
    assert first is not None, "broker closed the connection"
    rest, c.inbox[:] = c.inbox[:], []
    return [first, *rest]


def publish(port: int, client_id: str, topic: str, n: int, qos: int, *, window: int = 1000,
            payload: bytes | None = None, retain: bool = False, timeout: float = 30.0, first: int = 0) -> None:
    """Publish n messages and return once the broker acked every one (PUBACK, or PUBCOMP for QoS 2).
    Without `payload` each message's payload is its number, counting from `first`."""
    assert qos in (1, 2) and window < 65535
    c = Raw(port)
    assert c.connect(client_id).reason_code == 0
    sent = done = 0
    while done < n:
        burst = []
        while sent < n and sent - done < window:
            body = payload if payload is not None else b"%d" % (first + sent)
            burst.append(encode(P.Publish(topic, body, qos, retain, packet_id=sent % 65535 + 1), V311))
            sent += 1
        if burst:
            c.send(b"".join(burst))
        rels = []
        for p in _batch(c, timeout):
            if p.type == P.PUBREC:
                rels.append(encode(P.Pubrel(p.packet_id), V311))
            else:
                assert p.type in (P.PUBACK, P.PUBCOMP), p
                done += 1
        if rels:
            c.send(b"".join(rels))
    c.send(P.Disconnect())
    c.close()


def receive(c: Raw, n: int, timeout: float = 30.0) -> list[bytes]:
    """Payloads of the next n QoS 1/2 messages on connected client c, in arrival order.

    Every message is acknowledged (PUBACK, or PUBREC then PUBCOMP); returns once
    the n-th delivery is complete, so the broker may drop it from its store.
    """
    got: list[bytes] = []
    complete = 0
    while complete < n:
        acks = []
        for p in _batch(c, timeout):
            if p.type == P.PUBLISH:
                got.append(p.payload)
                if p.qos == 1:
                    acks.append(encode(P.Puback(p.packet_id), V311))
                    complete += 1
                else:
                    acks.append(encode(P.Pubrec(p.packet_id), V311))
            elif p.type == P.PUBREL:
                acks.append(encode(P.Pubcomp(p.packet_id), V311))
                complete += 1
        if acks:
            c.send(b"".join(acks))
    return got


def persistent_sessions(port: int, client_ids: list[str], filt: str, qos: int, group: int = 100) -> None:
    """Create offline persistent sessions subscribed to filt, `group` connections at a time.

    Returns once the broker closed every connection after its DISCONNECT, i.e.
    each session is offline and the next publish goes to the message store.
    """
    for i in range(0, len(client_ids), group):
        clients = [Raw(port) for _ in client_ids[i:i + group]]
        for c, cid in zip(clients, client_ids[i:i + group], strict=True):
            c.send(encode(P.Connect(cid, clean_start=False), V311)
                   + encode(P.Subscribe(1, [(filt, P.SubOpts(qos))]), V311))
        for c in clients:
            assert c.recv().reason_code == 0
            assert c.recv().reason_codes == [qos]
            c.send(P.Disconnect())
        for c in clients:
            assert c.closed_by_broker()
            c.close()


def reconnect_and_receive(port: int, client_ids: list[str], n: int, group: int = 100) -> list[list[bytes]]:
    """Resume each persistent session, take its next n messages (acked), disconnect."""
    out = []
    for i in range(0, len(client_ids), group):
        clients = [Raw(port) for _ in client_ids[i:i + group]]
        for c, cid in zip(clients, client_ids[i:i + group], strict=True):
            c.send(encode(P.Connect(cid, clean_start=False), V311))
        for c in clients:
            ack = c.recv()
            assert ack.reason_code == 0 and ack.session_present
        for c in clients:
            out.append(receive(c, n))
            c.send(P.Disconnect())
            c.close()
    return out


def store_stats(node) -> dict[str, int]:
    """`vmq-admin store show` of a running node, parsed: {'messages': n, 'index_entries': n, ...}."""
    ok, text = node.admin("store", "show")
    assert ok, text
    header, row = (line for line in text.splitlines() if line.startswith("|"))
    names = re.findall(r"\S+", header.replace("|", " "))
    values = re.findall(r"\S+", row.replace("|", " "))
    return dict(zip(names, map(int, values), strict=True))
