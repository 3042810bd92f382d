"""vmq_jwt on a real node: HS256 with a shared secret, RS256 with a PEM key, ES256 from a JWKS
file; expired, not yet valid, forged, wrong audience/issuer and alg=none tokens are refused and
counted; the claims give the username and the ACL patterns."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from authcases import REFUSED_V5, pub
from authkit import BAD_CREDENTIALS, SUB_REFUSED, V3, V5, connack, connected, subscribe
from broker import Broker
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "a-secret-of-32-bytes-or-more-shared-with-the-issuer"
AUD, ISS = "mqtt.example", "https://issuer.example"


def claims(**over) -> dict:
    now = int(time.time())
    base = {"sub": "dev42", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 300,
            "publish_acl": ["dev/%u/#", {"pattern": "up/%c", "max_qos": 0}], "subscribe_acl": ["cmd/%u/+"]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "rsa.pem").write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwk.update(kid="ec-1", use="sig", alg="ES256")
    (d / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    return {"dir": d, "rsa": rsa_key, "ec": ec_key}


@pytest.fixture(scope="module")
def node(tmp_path_factory, keys):
    conf = {"allow_anonymous": "off", "plugins.vmq_passwd": "off", "plugins.vmq_acl": "off",
            "plugins.vmq_jwt": "on", "vmq_jwt.secret": SECRET, "vmq_jwt.audience": AUD, "vmq_jwt.issuer": ISS,
            "vmq_jwt.public_key": str(keys["dir"] / "rsa.pem"), "vmq_jwt.jwks_file": str(keys["dir"] / "jwks.json")}
    node = Broker(tmp_path_factory.mktemp("jwt"), conf).start()
    yield node
    node.stop()
    node.cleanup()


def hs(**over) -> str:
    return jwt.encode(claims(**over), SECRET, algorithm="HS256")


def _metric(node, name: str) -> int:
    ok, out = node.admin("metrics", "show")
    assert ok, out
    return next(int(line.split("=")[1]) for line in out.splitlines() if line.startswith(f"counter.{name} ="))


def test_valid_tokens_of_each_algorithm(node, keys):
    rs = jwt.encode(claims(), keys["rsa"], algorithm="RS256")
    es = jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    for token in (hs(), rs, es):
        for version in (V3, V5):
            assert connack(node.port, version, "c1", "ignored", token) == 0


def test_claims_become_username_and_acl(node):
    raw = connected(node.port, V5, "c7", None, hs())
    try:
        assert pub(raw, "dev/dev42/temp") == 0  # %u is the sub claim, not the CONNECT username
        assert pub(raw, "dev/other/temp") == REFUSED_V5
        assert pub(raw, "up/c7") == REFUSED_V5  # max_qos 0
        assert subscribe(raw, "cmd/dev42/+") == [1]
        assert subscribe(raw, "cmd/+/+") == [SUB_REFUSED[V5]]
    finally:
        raw.close()


def test_a_wildcard_subject_does_not_widen_the_acl(node):
    raw = connected(node.port, V5, "c8", None, hs(sub="+"))
    try:
        assert subscribe(raw, "cmd/+/+") == [SUB_REFUSED[V5]]
        assert pub(raw, "dev/dev42/x") == REFUSED_V5
    finally:
        raw.close()


def test_refused_tokens_are_counted(node, keys):
    expired_before, invalid_before = _metric(node, "jwt_token_expired"), _metric(node, "jwt_token_invalid")
    now = int(time.time())
    expired = [hs(exp=now - 10), hs(nbf=now + 600)]
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    invalid = [
        jwt.encode(claims(), "another-secret-of-32-bytes-or-more-bytes", algorithm="HS256"),  # forged
        jwt.encode(claims(), other_rsa, algorithm="RS256"),  # forged with another key
        hs(aud="someone-else"), hs(iss="https://evil.example"), hs(exp=None),  # no exp
        hs()[:-3] + "abc",  # tampered signature
        jwt.encode(claims(), None, algorithm="none"),
        jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "unknown"}),
        hs(sub=None),
    ]
    for token in expired + invalid:
        assert connack(node.port, V5, "c9", None, token) == BAD_CREDENTIALS[V5], jwt.get_unverified_header(token)
    assert _metric(node, "jwt_token_expired") - expired_before == len(expired)
    assert _metric(node, "jwt_token_invalid") - invalid_before == len(invalid)


def test_a_password_that_is_no_token_is_left_to_other_plugins(node):
    # nobody else is enabled here, so nobody says ok: not authorized rather than bad credentials
    assert connack(node.port, V5, "c10", "user", "plain-password") == 0x87
