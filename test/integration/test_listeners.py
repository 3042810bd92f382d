"""ws, wss, ssl and PROXY-protocol listeners against real nodes and real clients.

Certificates are made with `openssl` in the test's temp dir (a CA, a server
certificate for 127.0.0.1 and a client certificate with CN `device-7`).
"""

from __future__ import annotations

import socket
import ssl
import struct

import pytest
from broker import free_port, wait_until
from clients import TIMEOUT, Paho, Raw
from tlskit import CLIENT_CN, Pki, make_pki, tls_conf
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from vmqpy.mqtt import packets as P
from vmqpy.mqtt.codec import Decoder, encode


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def port_of(node, key: str) -> int:
    return int(node.conf[key].rsplit(":", 1)[1])


def client(port: int, cid: str, *, ws: bool = False, pki: Pki | None = None, cert: bool = False,
           **kw) -> Paho:
    """A paho client over TCP, WebSocket, TLS (pki: trust the test CA) or both; cert: present one."""
    c = Paho(port, cid, **kw)
    if ws:
        c.c.transport = "websockets"
    if pki is not None:
        c.c.tls_set(ca_certs=pki.ca, certfile=pki.client_cert if cert else None,
                    keyfile=pki.client_key if cert else None)
    return c


def round_trip(sub: Paho, pub: Paho, topic: str, payloads: list[bytes]) -> None:
    assert sub.subscribe(topic, 1)[0].value == 1
    for payload in payloads:
        pub.publish(topic, payload, qos=1)
    assert [m.payload for m in sub.expect(len(payloads))] == payloads


# -- WebSocket ---------------------------------------------------------------------------------------------

def test_pubsub_over_ws_and_wss(make_broker, pki, cid):
    conf = {"listener.ws.default": f"127.0.0.1:{free_port()}", **tls_conf(pki, "listener.wss.default")}
    node = make_broker(conf)
    ws_port, wss_port = port_of(node, "listener.ws.default"), port_of(node, "listener.wss.default")
    over_ws = client(ws_port, f"{cid}-ws", ws=True)
    over_wss = client(wss_port, f"{cid}-wss", ws=True, pki=pki, version=5)
    over_tcp = client(node.port, f"{cid}-tcp")
    for c in (over_ws, over_wss, over_tcp):
        c.connect()
    big = bytes(range(256)) * 1024  # 256 KiB: 64-bit frame lengths, many TCP reads per frame
    round_trip(over_ws, over_wss, f"{cid}/a", [b"x", b"y" * 200, big])
    round_trip(over_wss, over_ws, f"{cid}/b", [b"z" * 70000, b"w"])
    round_trip(over_tcp, over_ws, f"{cid}/c", [b"to tcp"])
    rows = {r["port"]: r for r in node.rows("listener", "show")}
    assert (rows[str(ws_port)]["type"], rows[str(wss_port)]["type"]) == ("mqttws", "mqttwss")
    assert rows[str(ws_port)]["active_conns"] == "1"
    for c in (over_ws, over_wss, over_tcp):
        c.disconnect()


class WsRaw:
    """A hand-driven WebSocket client (wsproto): exact frames, fragments, pings, text frames."""

    def __init__(self, port: int, subprotocols: list[str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target="/mqtt", subprotocols=subprotocols,
                                               extra_headers=[(b"Origin", b"http://example.com")])))
        self.decoder = Decoder(version=4, server=False)

    def events(self) -> list:
        """The events of the next read; [] once the server closed the TCP connection."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return []
        if not data:
            return []
        self.ws.receive_data(data)
        return list(self.ws.events())

    def handshake(self):
        while not (events := self.events()):
            pass
        return events[0]

    def send(self, *events) -> None:
        self.sock.sendall(b"".join(self.ws.send(e) for e in events))

    def read_until(self, done) -> tuple[list, list]:
        """(events, MQTT packets) read until done(events, packets) holds."""
        events: list = []
        packets: list = []
        while not done(events, packets):
            new = self.events()
            assert new, "the node closed the connection"
            events += new
            for e in new:
                if isinstance(e, BytesMessage):
                    packets += self.decoder.feed(bytes(e.data))
        return events, packets


@pytest.mark.parametrize("offered", [["chat"], [], ["mqttv5", "wamp"]])
def test_ws_handshake_without_an_mqtt_subprotocol_is_refused(make_broker, offered):
    port = free_port()
    node = make_broker({"listener.ws.default": f"127.0.0.1:{port}"})
    answer = WsRaw(port, offered).handshake()
    assert isinstance(answer, RejectConnection) and answer.status_code == 400
    plain = Raw(port)  # a request without the upgrade: an HTTP error, then closed
    plain.send(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert plain.sock.recv(100).startswith(b"HTTP/1.1 400") and plain.closed_by_broker()
    wait_until(lambda: "offer none of mqtt, mqttv3.1" in node.log_text(), what="the refusal logged")


def test_ws_frames_fragmented_masked_interleaved_with_ping_and_close(make_broker, cid):
    port = free_port()
    make_broker({"listener.ws.default": f"127.0.0.1:{port}"})
    c = WsRaw(port, ["mqttv3.1", "mqtt"])
    accepted = c.handshake()
    assert isinstance(accepted, AcceptConnection) and accepted.subprotocol == "mqttv3.1"
    connect = encode(P.Connect(cid, proto_level=3, proto_name="MQIsdp"), 3)
    # the CONNECT in three fragments with a ping between them, then a SUBSCRIBE in the same write
    c.send(BytesMessage(connect[:3], message_finished=False), Ping(b"hi"),
           BytesMessage(connect[3:10], message_finished=False), BytesMessage(connect[10:]),
           BytesMessage(encode(P.Subscribe(1, [(f"{cid}/t", P.SubOpts(0))]), 3)))
    events, packets = c.read_until(lambda events, packets: len(packets) == 2)
    assert [type(p) for p in packets] == [P.Connack, P.Suback] and packets[0].reason_code == 0
    assert any(isinstance(e, Pong) and e.payload == b"hi" for e in events)
    c.send(CloseConnection(code=1000))
    closing = c.events()
    assert any(isinstance(e, CloseConnection) and e.code == 1000 for e in closing)
    assert c.events() == []

    text = WsRaw(port, ["mqtt"])
    text.handshake()
    text.send(TextMessage("not binary"))
    closing = text.events()
    assert any(isinstance(e, CloseConnection) and e.code == 1003 for e in closing)


def test_ws_listener_stop_start_and_max_connections(make_broker, cid):
    port = free_port()
    node = make_broker({"listener.ws.default": f"127.0.0.1:{port}",
                        "listener.ws.default.max_connections": "1"})
    addr = ("address=127.0.0.1", f"port={port}")
    first = client(port, f"{cid}-1", ws=True)
    first.connect()
    extra = WsRaw(port, ["mqtt"])
    assert extra.events() == []  # closed before the upgrade: the one connection allowed is taken
    wait_until(lambda: "max_connections 1 reached" in node.log_text(), what="the refusal logged")

    assert node.admin("listener", "stop", *addr) == (True, "Done")
    assert refused(port)
    first.publish(f"{cid}/still", b"up", qos=1)  # connected clients stay
    assert node.admin("listener", "start", *addr) == (True, "Done")
    first.disconnect()
    wait_until(lambda: active_conns(node, port) == "0", what="the connection counted out")
    again = client(port, f"{cid}-2", ws=True)
    again.connect()
    again.disconnect()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def active_conns(node, port: int) -> str:
    return next(r["active_conns"] for r in node.rows("listener", "show") if r["port"] == str(port))


def test_max_connections_on_tcp(make_broker, cid):
    node = make_broker({"listener.tcp.default.max_connections": "2"})
    kept = [Raw(node.port), Raw(node.port)]
    for i, raw in enumerate(kept):
        assert isinstance(raw.connect(f"{cid}-{i}"), P.Connack)
    assert Raw(node.port).closed_by_broker()
    kept[0].close()
    wait_until(lambda: active_conns(node, node.port) == "1", what="the closed connection counted out")
    assert isinstance(Raw(node.port).connect(f"{cid}-2"), P.Connack)


# -- TLS ---------------------------------------------------------------------------------------------------

def tls_refused(port: int, ctx: ssl.SSLContext) -> bool:
    """True when the node ends a TLS connection before answering a CONNECT (handshake or alert)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(encode(P.Connect("tls-probe"), 4))
                return s.recv(100) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_ssl_listeners_server_cert_client_cert_and_identity_as_username(make_broker, pki, cid):
    conf = {**tls_conf(pki, "listener.ssl.default"),
            **tls_conf(pki, "listener.ssl.strict", require_certificate="on", use_identity_as_username="on",
                       tls_version="tlsv1.3")}
    node = make_broker(conf, acl=f"user {CLIENT_CN}\ntopic cert/#\n")
    plain, strict = port_of(node, "listener.ssl.default"), port_of(node, "listener.ssl.strict")

    server_only = client(plain, f"{cid}-plain", pki=pki)  # TLS with the server certificate only
    assert server_only.connect()[0] == 0
    assert server_only.subscribe("cert/x", 0)[0].value == 0x80  # anonymous: no ACL entry

    no_cert = ssl.create_default_context(cafile=pki.ca)
    assert tls_refused(strict, no_cert)
    tls12 = ssl.create_default_context(cafile=pki.ca)
    tls12.load_cert_chain(pki.client_cert, pki.client_key)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert tls_refused(strict, tls12)  # tls_version = tlsv1.3 is the minimum

    device = client(strict, f"{cid}-dev", pki=pki, cert=True, username="claims-to-be-admin")
    assert device.connect()[0] == 0
    assert device.subscribe("cert/x", 1)[0].value == 1  # the ACL of user device-7 applies
    device.publish("cert/x", b"own", qos=1)
    assert [m.payload for m in device.expect(1)] == [b"own"]
    [row] = node.rows("session", "show", f"--client_id={cid}-dev")
    assert row["user"] == CLIENT_CN
    device.disconnect()
    server_only.disconnect()


def test_bad_tls_settings_stop_the_listener_start(make_broker, pki, tmp_path):
    conf = tls_conf(pki, "listener.ssl.default")
    conf["listener.ssl.default.certfile"] = str(tmp_path / "missing.pem")
    node = make_broker(conf, start=False)
    with pytest.raises(RuntimeError, match="listener ssl.default: TLS"):
        node.start()


# -- PROXY protocol ----------------------------------------------------------------------------------------

def proxy_v2(src: str, sport: int, command: int = 1, tlvs: bytes = b"") -> bytes:
    """A v2 header for a TCP client src:sport (to 127.0.0.1 or ::1 port 1883)."""
    six = ":" in src
    family = 0x21 if six else 0x11
    pack = socket.AF_INET6 if six else socket.AF_INET
    dst = "::1" if six else "127.0.0.1"
    body = socket.inet_pton(pack, src) + socket.inet_pton(pack, dst) + struct.pack("!HH", sport, 1883) + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes((0x20 | command, family)) + struct.pack("!H", len(body)) + body


def peer(node, client_id: str) -> tuple[str, str]:
    [row] = node.rows("session", "show", f"--client_id={client_id}", "--peer_host", "--peer_port")
    return row["peer_host"], row["peer_port"]


@pytest.fixture
def proxied(make_broker, pki):
    conf = {"listener.tcp.default.proxy_protocol": "on",
            **tls_conf(pki, "listener.ssl.default", proxy_protocol="on")}
    return make_broker(conf)


@pytest.mark.parametrize(("header", "shown"), [
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 1883\r\n", ("203.0.113.7", "40001")),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 40002 1883\r\n", ("2001:db8::7", "40002")),
    (proxy_v2("198.51.100.9", 50003, tlvs=b"\x04\x00\x02ab"), ("198.51.100.9", "50003")),
    (proxy_v2("2001:db8::9", 50004), ("2001:db8::9", "50004")),
    (b"PROXY UNKNOWN\r\n", ("127.0.0.1", None)),
    (proxy_v2("198.51.100.9", 50005, command=0), ("127.0.0.1", None)),  # LOCAL: the proxy itself
])
def test_proxy_header_sets_the_peer(proxied, cid, header, shown):
    raw = Raw(proxied.port)
    raw.send(header + encode(P.Connect(cid), 4))  # one write: the header must be consumed exactly
    assert isinstance(raw.recv(), P.Connack)
    host, port = peer(proxied, cid)
    assert host == shown[0] and (shown[1] is None or port == shown[1])
    if shown[1] is None:
        assert port == str(raw.sock.getsockname()[1])
    raw.close()


def test_proxy_header_before_tls(proxied, pki, cid):
    port = port_of(proxied, "listener.ssl.default")
    ctx = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(proxy_v2("192.0.2.44", 4444))
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(encode(P.Connect(cid), 4))
            assert tls.recv(4)[0] >> 4 == P.CONNACK
            assert peer(proxied, cid) == ("192.0.2.44", "4444")


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 10.0.0.1 10.0.0.2 70000 1\r\n",
    b"PROXY TCP4 2001:db8::1 10.0.0.2 1 1\r\n",
    b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
    b"PROXY SCTP 1.2.3.4 1.2.3.4 1 1\r\n",
    proxy_v2("198.51.100.9", 1)[:12] + b"\x31" + proxy_v2("198.51.100.9", 1)[13:],  # version 3
    proxy_v2("198.51.100.9", 1)[:14] + b"\x00\x04" + b"\x01\x02\x03\x04",  # INET with a short block
    encode(P.Connect("no-header"), 4),
])
def test_malformed_proxy_header_closes_and_the_node_keeps_serving(proxied, cid, header):
    bad = Raw(proxied.port)
    bad.send(header + encode(P.Connect(f"{cid}-bad"), 4))
    assert bad.closed_by_broker() and bad.inbox == []
    good = Raw(proxied.port)
    good.send(b"PROXY TCP4 203.0.113.8 10.0.0.1 1234 1883\r\n" + encode(P.Connect(cid), 4))
    assert isinstance(good.recv(), P.Connack)
    wait_until(lambda: "PROXY" in proxied.log_text(), what="the bad header logged")
