"""MQTT clients for tests: paho-mqtt for real-client behaviour, raw sockets for exact frames."""

from __future__ import annotations

import queue
import socket
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import Decoder, encode

TIMEOUT = 10.0
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


class Paho:
    """A paho client with blocking helpers that wait on the broker's answers."""

    def __init__(self, port: int, client_id: str = "", version: int = V311, clean: bool = True,
                 username: str | None = None, password: str | None = None, keepalive: int = 60) -> None:
        self.port = port
        self.version = version
        self.clean = clean
        kwargs = {"clean_session": clean} if version != V5 else {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, **kwargs)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.keepalive = keepalive
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.unsubacks: queue.Queue = queue.Queue()
        self.disconnected = threading.Event()
        self.disconnect_reason = None
        self.c.on_connect = lambda c, u, flags, rc, props: self.connack.put((rc, flags, props))
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        self.c.on_unsubscribe = lambda c, u, mid, codes, props: self.unsubacks.put(codes)
        self.c.on_disconnect = self._on_disconnect

    def _on_disconnect(self, c, u, flags, rc, props) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()

    def will(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
             properties: Properties | None = None) -> Paho:
        self.c.will_set(topic, payload, qos, retain, properties)
        return self

    def connect(self, properties: Properties | None = None, expect_ok: bool = True):
        """Connect and wait for CONNACK; returns (reason_code, flags, properties)."""
        kwargs = {"clean_start": self.clean, "properties": properties} if self.version == V5 else {}
        self.c.connect("127.0.0.1", self.port, self.keepalive, **kwargs)
        self.c.loop_start()
        rc, flags, props = self.connack.get(timeout=TIMEOUT)
        if expect_ok:
            assert not rc.is_failure, f"CONNACK {rc}"
        return rc, flags, props

    def subscribe(self, topic, qos: int = 0, properties: Properties | None = None,
                  options: mqtt.SubscribeOptions | None = None) -> list:
        if options is not None:
            self.c.subscribe(topic, options=options, properties=properties)
        else:
            self.c.subscribe(topic, qos, properties=properties)
        return self.subacks.get(timeout=TIMEOUT)

    def unsubscribe(self, topic: str) -> list:
        self.c.unsubscribe(topic)
        return self.unsubacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.c.publish(topic, payload, qos, retain, properties)
        if wait and qos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()
        return info

    def expect(self, n: int = 1, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        return [self.messages.get(timeout=timeout) for _ in range(n)]

    def expect_none(self, timeout: float = 0.5) -> None:
        """Assert nothing arrives within `timeout` (used only to prove an absence)."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {m.topic} {m.payload!r}")

    def disconnect(self, properties: Properties | None = None) -> None:
        self.c.disconnect(properties=properties) if self.version == V5 else self.c.disconnect()
        self.disconnected.wait(TIMEOUT)
        self.c.loop_stop()

    def drop(self) -> None:
        """Close the TCP connection without DISCONNECT (an abnormal close)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def props(packet_type: int, **values) -> Properties:
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


CONNECT_PROPS = PacketTypes.CONNECT
PUBLISH_PROPS = PacketTypes.PUBLISH
SUBSCRIBE_PROPS = PacketTypes.SUBSCRIBE
DISCONNECT_PROPS = PacketTypes.DISCONNECT
WILL_PROPS = PacketTypes.WILLMESSAGE


class Raw:
    """A raw socket speaking exact frames through vmqpy's own codec."""

    def __init__(self, port: int, version: int = 4, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.version = version
        self.decoder = Decoder(version=version, server=False)
        self.inbox: list = []

    def send(self, packet_or_bytes) -> None:
        data = packet_or_bytes if isinstance(packet_or_bytes, bytes | bytearray) else encode(
            packet_or_bytes, self.version)
        self.sock.sendall(data)

    def connect(self, client_id: str = "raw", clean: bool = True, keepalive: int = 60, **kw) -> P.Connack:
        self.send(P.Connect(client_id, proto_level=self.version, clean_start=clean, keepalive=keepalive, **kw))
        return self.recv()

    def recv(self, timeout: float = TIMEOUT):
        """The next packet from the broker; None if the broker closed the connection."""
        self.sock.settimeout(timeout)
        while not self.inbox:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.inbox.extend(self.decoder.feed(data))
        return self.inbox.pop(0)

    def closed_by_broker(self, timeout: float = TIMEOUT) -> bool:
        """True once the broker closes; packets sent before closing are kept in inbox."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.inbox.extend(self.decoder.feed(data))

    def close(self) -> None:
        self.sock.close()
