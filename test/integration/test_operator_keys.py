"""vmq_server keys of an operator's runbook against real nodes: $SYS options, unauthorized v3 publishes,
WebSocket frame size, retained message expiry, socket options, CRL refresh, API key limits,
keep alive logging, plugin priorities, HTTPS webhooks with client certificates and CRLs."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess

import pytest
from broker import free_port, wait_until
from clients import V5, Paho, Raw
from crlkit import crl, revoke
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pki import make_pki

from vmqpy.mqtt import packets as P

SYS = "$SYS/VerneMQ@127.0.0.1/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_systree_mountpoint_qos_and_retain(make_broker, cid):
    port = free_port()
    node = make_broker({"systree_interval": "100", "systree_qos": "1", "systree_retain": "on",
                        "systree_mountpoint": "ops", "listener.tcp.ops": f"127.0.0.1:{port}",
                        "listener.tcp.ops.mountpoint": "ops"})
    plain = Paho(node.port, cid + "-plain")
    plain.connect()
    plain.subscribe(SYS + "#", 1)
    ops = Paho(port, cid + "-ops")
    ops.connect()
    ops.subscribe(SYS + "mqtt/connack/sent", 1)
    m = ops.expect(1)[0]
    assert (m.qos, m.retain) == (1, False)  # a live delivery keeps retain off (MQTT 3.1.1)
    late = Paho(port, cid + "-late")
    late.connect()
    late.subscribe(SYS + "mqtt/connack/sent", 1)
    m = late.expect(1)[0]
    assert m.retain and m.qos == 1  # it was stored as a retained message in the ops mountpoint
    plain.expect_none()  # nothing of it in the default mountpoint
    for c in (plain, ops, late):
        c.disconnect()


@pytest.mark.parametrize("flag", ["on", "off"])
def test_disconnect_on_unauthorized_publish_v3(make_broker, cid, flag):
    node = make_broker({"disconnect_on_unauthorized_publish_v3": flag}, acl=f"topic {cid}/ok\n")
    raw = Raw(node.port)
    assert raw.connect(cid).reason_code == 0
    raw.send(P.Publish(f"{cid}/no", b"x", qos=1, packet_id=1))
    if flag == "on":
        assert raw.closed_by_broker()
    else:
        assert isinstance(raw.recv(), P.Puback)  # acknowledged, dropped, still connected
        raw.send(P.Pingreq())
        assert isinstance(raw.recv(), P.Pingresp)
    raw.close()


def test_max_ws_frame_size(make_broker, cid):
    port = free_port()
    node = make_broker({"listener.ws.default": f"127.0.0.1:{port}", "max_ws_frame_size": "1000"})
    c = Paho(port, cid)
    c.c.transport = "websockets"
    c.connect()
    c.subscribe(f"{cid}/t", 0)
    c.publish(f"{cid}/t", b"x" * 500, qos=1)
    assert c.expect(1)[0].payload == b"x" * 500
    c.publish(f"{cid}/t", b"x" * 2000, qos=0)
    assert c.disconnected.wait(10)
    c.c.loop_stop()
    assert node.ping()


def test_expire_retain_cache_sweeps_expired_retained_messages(make_broker, cid):
    node = make_broker({"expire_retain_cache": "1"})
    pub = Paho(node.port, cid, version=V5)
    pub.connect()
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    pub.publish(f"{cid}/short", "e", qos=1, retain=True, properties=props)
    pub.publish(f"{cid}/long", "k", qos=1, retain=True)
    assert len(node.rows("retain", "show", "--topic")) == 2
    wait_until(lambda: node.rows("retain", "show", "--topic") == [{"topic": f"{cid}/long"}], what="the sweep")
    wait_until(lambda: "1 expired retained messages deleted" in node.log_text(), what="the log line")
    pub.disconnect()


def _server_rcvbuf(port: int, client_port: int) -> int:
    """The receive buffer of the node's end of a connection, as `ss -tm` shows it (rb...)."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} and dport = :{client_port} )"],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"rb(\d+)", out).group(1))


def test_tcp_listen_options_apply_to_accepted_connections(make_broker, cid):
    node = make_broker({"tcp_listen_options": "[{nodelay, true}, {recbuf, 16384}, {send_timeout, 30000}]"})
    raw = Raw(node.port)
    assert raw.connect(cid).reason_code == 0
    assert _server_rcvbuf(node.port, raw.sock.getsockname()[1]) == 2 * 16384  # Linux doubles what is asked
    raw.close()
    default = make_broker()
    raw = Raw(default.port)
    assert raw.connect(cid).reason_code == 0
    assert _server_rcvbuf(default.port, raw.sock.getsockname()[1]) != 2 * 16384
    raw.close()
    ok, out = node.admin("config", "show", "app=vmq_server", "--key=tcp_listen_options")
    assert out.endswith("[{nodelay, true}, {recbuf, 16384}, {send_timeout, 30000}]")


def _tls_client(pki, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")
    s.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c")  # CONNECT, client id "c"
    return s


def _accepted(pki, port: int) -> bool:
    try:
        with _tls_client(pki, port) as s:
            return s.recv(4) == b"\x20\x02\x00\x00"
    except (ssl.SSLError, OSError):
        return False


def test_crl_refresh_interval_reloads_the_crlfile(make_broker, tmp_path):
    (tmp_path / "pki-crl").mkdir()
    pki = make_pki(tmp_path / "pki-crl")  # this test revokes: its own CA
    port = free_port()
    make_broker({"listener.ssl.default": f"127.0.0.1:{port}", "listener.ssl.default.certfile": pki.server_cert,
                 "listener.ssl.default.keyfile": pki.server_key, "listener.ssl.default.cafile": pki.ca,
                 "listener.ssl.default.require_certificate": "on", "listener.ssl.default.crlfile": crl(pki),
                 "crl_refresh_interval": "200"})
    assert _accepted(pki, port)
    revoke(pki, pki.client_cert)
    wait_until(lambda: not _accepted(pki, port), what="the revoked certificate refused")


def test_api_key_limits(make_broker):
    node = make_broker({"min_apikey_length": "40", "max_apikey_expiry_days": "10"})
    ok, out = node.admin("api-key", "add", "key=short-key", "expires=2099-01-01T00:00:00")
    assert not ok and "invalid_key_length" in out
    ok, out = node.admin("api-key", "add", "key=" + "k" * 40)
    assert not ok and "invalid_expiry_date" in out  # with a maximum, a key must expire
    ok, out = node.admin("api-key", "add", "key=" + "k" * 40, "expires=2099-01-01T00:00:00")
    assert not ok and "invalid_expiry_date" in out  # beyond 10 days
    import datetime

    soon = (datetime.datetime.now() + datetime.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert node.admin("api-key", "add", "key=" + "k" * 40, f"expires={soon}") == (True, "Done")
    ok, key = node.admin("api-key", "create", f"expires={soon}")
    assert ok and len(key) == 40


@pytest.mark.parametrize("flag,level", [("on", "WARNING"), ("off", "INFO")])
def test_keepalive_expiry_is_logged_as_warning_or_info(make_broker, cid, flag, level):
    node = make_broker({"logging.keepalive_as_warning": flag})
    raw = Raw(node.port)
    assert raw.connect(cid, keepalive=1).reason_code == 0
    assert raw.closed_by_broker()  # no PINGREQ within 1.5 s
    line = wait_until(lambda: next((ln for ln in node.log_text().splitlines() if "keepalive expired" in ln), None),
                      what="the log line")
    assert f"[{level}]" in line and repr(cid) in line


def test_plugin_priority_orders_starts_and_hook_chains(make_broker, cid):
    node = make_broker({"plugins.vmq_acl.priority": "1", "plugins.vmq_passwd.priority": "2"}, start=False)
    node.start()
    log = node.log_text()
    assert log.index("plugin vmq_acl started") < log.index("plugin vmq_passwd started")
    node.stop()
    node.conf.update({"plugins.vmq_acl.priority": "9"})
    node.start()
    log = node.log_text().rsplit("node VerneMQ@127.0.0.1 stopped", 1)[1]
    assert log.index("plugin vmq_passwd started") < log.index("plugin vmq_acl started")


def test_webhooks_over_https_with_a_client_certificate_and_crls(make_broker, tmp_path, cid):
    from webhooks.endpoint import serve

    (tmp_path / "pki-hooks").mkdir()
    pki = make_pki(tmp_path / "pki-hooks")
    with serve(tmp_path, tls=(pki.server_cert, pki.server_key, pki.ca)) as url:
        base = {"plugins.vmq_webhooks": "on", "allow_anonymous": "off", "vmq_webhooks.reg.hook": "auth_on_register",
                "vmq_webhooks.reg.endpoint": f"{url}/auth", "vmq_webhooks.cafile": pki.ca}
        with_cert = make_broker({**base, "vmq_webhooks.certfile": pki.client_cert,
                                 "vmq_webhooks.keyfile": pki.client_key})
        assert Raw(with_cert.port).connect(cid).reason_code == 0  # the endpoint said ok over TLS
        without = make_broker(base)
        assert Raw(without.port).connect(cid).reason_code == 5  # the endpoint refused the handshake
        # a CRL next to the CA in the cafile, revoking the endpoint's certificate
        bundle = tmp_path / "ca-and-crl.pem"
        shutil.copy(pki.ca, bundle)
        with open(bundle, "a") as f:
            f.write(open(revoke(pki, pki.server_cert)).read())
        crls = {**base, "vmq_webhooks.cafile": str(bundle), "vmq_webhooks.certfile": pki.client_cert,
                "vmq_webhooks.keyfile": pki.client_key}
        assert Raw(make_broker(crls).port).connect(cid).reason_code == 5
        assert Raw(make_broker({**crls, "vmq_webhooks.use_crls": "off"}).port).connect(cid).reason_code == 0


def test_erlang_lists_for_http_modules_and_an_unknown_module_serves_nothing(make_broker):
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}",
                        "listener.http.default.http_modules": "[vmq_health_http, vmq_web_ui]"})
    import urllib.request

    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status == 200
    assert node.ping()
