"""MQTT 5 enhanced authentication: the AUTH exchange wired to on_auth_m5 (test/plugins/challenge_auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clients import Raw

from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R

PLUGIN_DIR = str(Path(__file__).resolve().parent.parent / "plugins")
METHOD = "VMQ-CHALLENGE"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from broker import Broker

    b = Broker(tmp_path_factory.mktemp("auth5"), {"plugins.challenge_auth": "on",
                                                  "plugins.challenge_auth.path": PLUGIN_DIR}).start()
    yield b
    b.stop()
    b.cleanup()


def auth_props(data: bytes, method: str = METHOD) -> dict:
    return {"authentication_method": method, "authentication_data": data}


def challenge(raw: Raw, cid: str, method: str = METHOD):
    raw.send(P.Connect(cid, proto_level=5, properties=auth_props(b"hello", method)))
    return raw.recv()


def answer(raw: Raw, challenge_pkt: P.Auth, reason: int = R.CONTINUE_AUTHENTICATION) -> None:
    nonce = challenge_pkt.properties["authentication_data"].split(b":")[1]
    raw.send(P.Auth(reason, auth_props(b"response:" + nonce)))


def test_two_step_challenge_response_connects(node, cid):
    raw = Raw(node.port, 5)
    step = challenge(raw, cid)
    assert isinstance(step, P.Auth) and step.reason_code == R.CONTINUE_AUTHENTICATION
    assert step.properties["authentication_method"] == METHOD
    assert step.properties["authentication_data"].startswith(b"challenge:")
    answer(raw, step)
    ack = raw.recv()
    assert isinstance(ack, P.Connack) and ack.reason_code == R.SUCCESS
    assert ack.properties["authentication_method"] == METHOD
    assert ack.properties["authentication_data"] == b"welcome"
    assert ack.properties["user_property"] == [("auth", "challenge")]
    raw.send(P.Subscribe(1, [("auth5/x", P.SubOpts(0))]))  # the session works
    assert isinstance(raw.recv(), P.Suback)


def test_wrong_response_gets_not_authorized(node, cid):
    raw = Raw(node.port, 5)
    challenge(raw, cid)
    raw.send(P.Auth(R.CONTINUE_AUTHENTICATION, auth_props(b"response:wrong")))
    ack = raw.recv()
    assert isinstance(ack, P.Connack) and ack.reason_code == R.NOT_AUTHORIZED
    assert raw.closed_by_broker()


def test_unsupported_method_gets_bad_authentication_method(node, cid):
    raw = Raw(node.port, 5)
    ack = challenge(raw, cid, method="SCRAM-SHA-1")
    assert isinstance(ack, P.Connack) and ack.reason_code == R.BAD_AUTHENTICATION_METHOD


def test_publish_before_the_exchange_completes_is_a_protocol_error(node, cid):
    raw = Raw(node.port, 5)
    challenge(raw, cid)
    raw.send(P.Publish("auth5/early", b"x"))
    ack = raw.recv()
    assert isinstance(ack, P.Connack) and ack.reason_code == R.PROTOCOL_ERROR


def test_auth_with_another_method_during_the_exchange_is_a_protocol_error(node, cid):
    raw = Raw(node.port, 5)
    challenge(raw, cid)
    raw.send(P.Auth(R.CONTINUE_AUTHENTICATION, auth_props(b"response:1", "OTHER")))
    ack = raw.recv()
    assert isinstance(ack, P.Connack) and ack.reason_code == R.PROTOCOL_ERROR


def connected(node, cid: str) -> Raw:
    raw = Raw(node.port, 5)
    answer(raw, challenge(raw, cid))
    assert raw.recv().reason_code == R.SUCCESS
    return raw


def test_reauthentication_during_the_session(node, cid):
    raw = connected(node, cid)
    raw.send(P.Auth(R.RE_AUTHENTICATE, auth_props(b"hello")))
    step = raw.recv()
    assert isinstance(step, P.Auth) and step.reason_code == R.CONTINUE_AUTHENTICATION
    answer(raw, step)
    done = raw.recv()
    assert isinstance(done, P.Auth) and done.reason_code == R.SUCCESS
    assert done.properties["authentication_data"] == b"welcome"
    raw.send(P.Pingreq())  # still connected
    assert isinstance(raw.recv(), P.Pingresp)


def test_failed_reauthentication_disconnects(node, cid):
    raw = connected(node, cid)
    raw.send(P.Auth(R.RE_AUTHENTICATE, auth_props(b"hello")))
    raw.recv()
    raw.send(P.Auth(R.CONTINUE_AUTHENTICATION, auth_props(b"response:forged")))
    assert raw.closed_by_broker()
    assert isinstance(raw.inbox[-1], P.Disconnect) and raw.inbox[-1].reason_code == R.NOT_AUTHORIZED


def test_auth_without_authentication_method_in_connect_is_a_protocol_error(node, cid):
    raw = Raw(node.port, 5)
    assert raw.connect(cid).reason_code == 0
    raw.send(P.Auth(R.RE_AUTHENTICATE, auth_props(b"hello")))
    assert raw.closed_by_broker()
    assert isinstance(raw.inbox[-1], P.Disconnect) and raw.inbox[-1].reason_code == R.PROTOCOL_ERROR
