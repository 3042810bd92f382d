"""VerneMQ's per-listener options operators use behind load balancers, against real nodes and clients."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest
from authkit import vmq_passwd
from broker import free_port
from clients import TIMEOUT, V5, Paho, Raw
from pkikit import CLIENT_CN, Pki, proxy_v2, tls_conf

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R
from vmqpy.mqtt.codec import encode


def listener(node, name: str) -> int:
    return int(node.conf[f"listener.tcp.{name}"].rsplit(":", 1)[1])


def user_of(node, client_id: str) -> str:
    [row] = node.rows("session", "show", f"--client_id={client_id}", "--user")
    return row["user"]


def test_mountpoint_off_is_no_mountpoint(make_broker, cid):
    node = make_broker({"listener.mountpoint": "off",
                        "listener.tcp.other": f"127.0.0.1:{free_port()}",
                        "listener.tcp.other.mountpoint": "tenant/"})
    sub = Paho(node.port, f"{cid}-s")
    sub.connect()
    sub.subscribe(f"{cid}/#", 1)
    tenant = Paho(listener(node, "other"), f"{cid}-p")
    tenant.connect()
    tenant.publish(f"{cid}/x", "isolated", 1)
    pub = Paho(node.port, f"{cid}-q")
    pub.connect()
    pub.publish(f"{cid}/x", "shared", 1)
    assert [m.payload for m in sub.expect()] == [b"shared"]  # nothing from the tenant/ listener
    sub.expect_none()
    rows = {r["port"]: r["mountpoint"] for r in node.rows("listener", "show")}
    assert rows[str(node.port)] == "" and rows[str(listener(node, "other"))] == "tenant/"


@pytest.mark.parametrize(("level", "allowed", "code"), [
    (3, None, 0), (4, None, 0), (3, "3,4,5", R.UNSUPPORTED_PROTOCOL_VERSION), (4, "3,4,5,131", 1)])
def test_bridge_protocol_levels_131_and_132(make_broker, cid, level, allowed, code):
    """A bridge's CONNECT carries 0x80 + its level: 131 (MQTT 3.1) and 132 (3.1.1), as VerneMQ's."""
    node = make_broker({"listener.tcp.default.allowed_protocol_versions": allowed} if allowed else {})
    raw = Raw(node.port, level)
    ack = raw.connect(cid, bridge=True)
    assert ack.reason_code == (1 if code else 0)
    raw.close()


def test_max_connection_lifetime_disconnects_with_maximum_connect_time(make_broker, cid):
    node = make_broker({"listener.tcp.default.max_connection_lifetime": "1"})
    raw = Raw(node.port, V5)
    assert raw.connect(cid).reason_code == 0
    disconnect = raw.recv(timeout=TIMEOUT)
    assert isinstance(disconnect, P.Disconnect) and disconnect.reason_code == R.MAXIMUM_CONNECT_TIME
    assert raw.closed_by_broker()


def test_allow_anonymous_override_and_auth_plugins_per_listener(make_broker, cid):
    open_port, acl_only = free_port(), free_port()
    node = make_broker({"allow_anonymous": "off",
                        "listener.tcp.open": f"127.0.0.1:{open_port}",
                        "listener.tcp.open.allow_anonymous_override": "on",
                        "listener.tcp.acl_only": f"127.0.0.1:{acl_only}",
                        "listener.tcp.acl_only.auth_plugins": "vmq_acl"},  # it has no auth_on_register
                       start=False)
    vmq_passwd(node.root / "vmq.passwd", "dev", "secret")
    node.start()
    assert Raw(node.port).connect(f"{cid}-a").reason_code == 5  # anonymous: not authorized
    assert Raw(open_port).connect(f"{cid}-b").reason_code == 0  # the override
    assert Raw(node.port).connect(f"{cid}-c", username="dev", password=b"secret").reason_code == 0
    # vmq_passwd knows the user, but this listener's chain holds vmq_acl only: nobody answers
    assert Raw(acl_only).connect(f"{cid}-d", username="dev", password=b"secret").reason_code == 5


def _ssl_cn_tlv(cn: str) -> bytes:
    sub = bytes((0x22,)) + len(cn).to_bytes(2, "big") + cn.encode()
    value = b"\x07" + b"\x00\x00\x00\x00" + sub  # client flags: SSL, cert in connection and session; verify 0
    return bytes((0x20,)) + len(value).to_bytes(2, "big") + value


@pytest.mark.parametrize(("use_cn", "user"), [(None, CLIENT_CN), ("off", "liar")])
def test_proxy_protocol_use_cn_as_username(make_broker, cid, use_cn, user):
    conf = {"listener.tcp.default.proxy_protocol": "on"}
    if use_cn:
        conf["listener.tcp.default.proxy_protocol_use_cn_as_username"] = use_cn
    node = make_broker(conf)
    raw = Raw(node.port)
    raw.send(proxy_v2("198.51.100.7", 40000, tlvs=_ssl_cn_tlv(CLIENT_CN))
             + encode(P.Connect(cid, username="liar"), 4))
    assert raw.recv().reason_code == 0
    assert user_of(node, cid) == user  # VerneMQ's default (on): the proxy's CN is the username


def _ws_client(port: int, cid: str, headers: dict[str, str]) -> Paho:
    c = Paho(port, cid)
    c.c.transport = "websockets"
    c.c.ws_set_options(headers=headers)
    return c


def test_proxy_xff_from_a_trusted_intermediate(make_broker, cid):
    port = free_port()
    node = make_broker({"listener.ws.default": f"127.0.0.1:{port}",
                        "listener.ws.default.proxy_xff_support": "on",
                        "listener.ws.default.proxy_xff_trusted_intermediate": "10.9.9.9;127.0.0.1",
                        "listener.ws.default.proxy_xff_use_cn_as_username": "on"})
    _ws_client(port, cid, {"X-Forwarded-For": "203.0.113.5, 10.9.9.9", "X-SSL-Client-CN": "dev-5"}).connect()
    [row] = node.rows("session", "show", f"--client_id={cid}", "--peer_host", "--user")
    assert (row["peer_host"], row["user"]) == ("203.0.113.5", "dev-5")
    refused = _ws_client(port, f"{cid}-2", {"X-Forwarded-For": "203.0.113.5"})  # no CN header
    with pytest.raises(Exception):  # noqa: B017 (paho raises its own errors on a refused upgrade)
        refused.connect()


def test_xff_from_an_untrusted_peer_is_refused(make_broker, cid):
    port = free_port()
    make_broker({"listener.ws.default": f"127.0.0.1:{port}", "listener.ws.default.proxy_xff_support": "on",
                 "listener.ws.default.proxy_xff_trusted_intermediate": "10.9.9.9"})
    with pytest.raises(Exception):  # noqa: B017
        _ws_client(port, cid, {"X-Forwarded-For": "203.0.113.5"}).connect()


def test_tls_keypasswd_eccs_handshake_timeout_and_psk(make_broker, pki: Pki, cid, tmp_path):
    encrypted = tmp_path / "server-enc.key"
    subprocess.run(["openssl", "pkey", "-in", pki.server_key, "-out", str(encrypted), "-aes256", "-passout",
                    "pass:s3cret"], check=True, capture_output=True)
    conf = tls_conf(pki, "listener.ssl.default", keyfile=str(encrypted), keypasswd="s3cret",
                    eccs="[prime256v1]", tls_handshake_timeout="500")
    node = make_broker(conf)
    port = int(node.conf["listener.ssl.default"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=pki.ca)
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    tls.sendall(encode(P.Connect(cid), 4))
    assert tls.recv(4)[0] == 0x20  # CONNACK over TLS with the decrypted key
    tls.close()
    idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:  # no ClientHello within tls_handshake_timeout: closed (reset: tcp_listen_options has linger 0)
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass
    bad = make_broker({**tls_conf(pki, "listener.ssl.default", psk_support="on")}, start=False)
    with pytest.raises(RuntimeError, match="TLS-PSK"):
        bad.start()


@pytest.mark.parametrize(("depth", "direct", "deep"), [("0", True, False), ("1", True, True)])
def test_tls_depth_bounds_the_intermediate_cas(make_broker, pki: Pki, cid, depth, direct, deep):
    """depth: intermediate CAs allowed between the client certificate and the root (Erlang's ssl depth)."""
    node = make_broker(tls_conf(pki, "listener.ssl.default", cafile=pki.bundle, require_certificate="on",
                                depth=depth))
    port = int(node.conf["listener.ssl.default"].rsplit(":", 1)[1])

    def connects(cert: str, key: str) -> bool:
        ctx = ssl.create_default_context(cafile=pki.ca)
        ctx.load_cert_chain(cert, key)
        try:
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                                 server_hostname="127.0.0.1") as tls:
                tls.sendall(encode(P.Connect(cid), 4))
                return tls.recv(4)[:1] == b"\x20"
        except (OSError, ssl.SSLError):
            return False

    assert connects(pki.client_cert, pki.client_key) is direct  # signed by the root itself
    assert connects(pki.deep_cert, pki.deep_key) is deep  # through one intermediate CA


def _status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        return int(sock.recv(1024).split()[1])


def test_request_line_and_header_value_limits(make_broker):
    http, ws = free_port(), free_port()
    make_broker({"listener.http.default": f"127.0.0.1:{http}",
                 "listener.http.default.max_request_line_length": "100",
                 "listener.http.default.max_header_value_length": "50",
                 "listener.ws.default": f"127.0.0.1:{ws}", "listener.ws.default.max_request_line_length": "100"})
    assert _status(http, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == 200
    assert _status(http, b"GET /health?" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 414
    assert _status(http, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 51 + b"\r\n\r\n") == 431
    upgrade = (b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
    assert _status(ws, b"GET /mqtt HTTP/1.1\r\n" + upgrade) == 101
    assert _status(ws, b"GET /mqtt?" + b"a" * 100 + b" HTTP/1.1\r\n" + upgrade) == 414
