"""vmq_jwt: the CONNECT password is a JSON Web Token (beyond VerneMQ, its issue #2084). See docs/jwt.md.

PyJWT verifies the signature (HS* with `vmq_jwt.secret`, RS*/ES* with `vmq_jwt.public_key` or
the key of the token's `kid` in `vmq_jwt.jwks_file`) and the exp, nbf, aud and iss claims.
The username claim becomes the session's username; the publish/subscribe ACL claims (lists of
patterns, or of VerneMQ's ACL objects with max_qos, allowed_retain, ...) go into an auth cache
as vmq_diversity's, with the same rule that %u/%c/%m never widen a pattern.

A password that is not a JWT at all is left to the other plugins ("next"); a JWT that fails
any check is refused as bad credentials and counted (jwt_token_expired, jwt_token_invalid).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt

from vmqpy.plugins.hooks import ERROR, NEXT, OK
from vmqpy.plugins.vmq_diversity.cache import AuthCache

log = logging.getLogger(__name__)


class KeyRing:
    """The verification keys: a shared secret, a PEM public key, a JWKS file."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.secret: bytes | None = settings["secret"].encode() if settings.get("secret") else None
        self.public_key: str | None = None
        self.jwks: jwt.PyJWKSet | None = None
        if settings.get("public_key"):
            with open(settings["public_key"], encoding="ascii") as f:
                self.public_key = f.read()
        if settings.get("jwks_file"):
            with open(settings["jwks_file"], encoding="utf-8") as f:
                self.jwks = jwt.PyJWKSet.from_json(f.read())
        if not (self.secret or self.public_key or self.jwks):
            raise ValueError("vmq_jwt needs vmq_jwt.secret, vmq_jwt.public_key or vmq_jwt.jwks_file")

    def key_for(self, header: dict[str, Any]) -> Any:
        alg = header.get("alg", "")
        if alg.startswith("HS"):
            if self.secret is None:
                raise jwt.InvalidKeyError("no shared secret for HS tokens")
            return self.secret
        kid = header.get("kid")
        if self.jwks is not None and kid is not None:
            return self.jwks[kid].key  # KeyError: no such key
        if self.public_key is not None:
            return self.public_key
        if self.jwks is not None and len(self.jwks.keys) == 1:
            return self.jwks.keys[0].key
        raise jwt.InvalidKeyError(f"no public key for this {alg} token")


def _acl(claim: Any) -> list[dict] | None:
    if not isinstance(claim, list):
        return None
    return [{"pattern": p} if isinstance(p, str) else p for p in claim if isinstance(p, str | dict)]


class JwtPlugin:
    hooks_never_block = True  # signature checks and dictionary lookups: CPU only, keys read at start

    def __init__(self, settings: dict[str, Any], metrics: Any) -> None:
        self._keys = KeyRing(settings)
        self._algorithms = list(settings.get("algorithms") or ["HS256", "RS256", "ES256"])
        self._audience = settings.get("audience")
        self._issuer = settings.get("issuer")
        self._leeway = int(settings.get("leeway", 0))
        self._require = ["exp"] if settings.get("require_exp", True) else []
        self._username_claim = settings.get("username_claim", "sub")
        self._pub_claim = settings.get("publish_acl_claim", "publish_acl")
        self._sub_claim = settings.get("subscribe_acl_claim", "subscribe_acl")
        self._metrics = metrics
        self.cache = AuthCache()

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims; raises a jwt.PyJWTError otherwise."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in self._algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {header.get('alg')!r} not accepted")
        try:
            key = self._keys.key_for(header)
        except KeyError:
            raise jwt.InvalidKeyError(f"no key {header.get('kid')!r} in the JWKS file") from None
        return jwt.decode(token, key, algorithms=[header["alg"]], audience=self._audience, issuer=self._issuer,
                          leeway=self._leeway, options={"require": self._require})

    def _register(self, subscriber_id: tuple[str, str], password: bytes | None) -> Any:
        try:
            token = password.decode("ascii") if password else ""
        except UnicodeDecodeError:
            return NEXT
        if token.count(".") != 2:
            return NEXT  # not a JWT: another plugin may know this password
        try:
            claims = self.claims(token)
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as e:
            return self._refuse("jwt_token_expired", subscriber_id, e)
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            return self._refuse("jwt_token_invalid", subscriber_id, e)
        username = claims.get(self._username_claim)
        if not isinstance(username, str) or not username:
            return self._refuse("jwt_token_invalid", subscriber_id, f"no {self._username_claim} claim")
        pub, sub = _acl(claims.get(self._pub_claim)), _acl(claims.get(self._sub_claim))
        if pub is not None or sub is not None:
            self.cache.insert(*subscriber_id, username, pub, sub)
        return OK, {"username": username}

    def _refuse(self, counter: str, subscriber_id: tuple[str, str], why: Any) -> Any:
        self._metrics.inc(counter)
        log.info("vmq_jwt: refused %s: %s", subscriber_id[1], why)
        return ERROR, "invalid_credentials"

    # -- hooks

    def auth_on_register(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                         password: bytes | None, clean_session: bool) -> Any:
        return self._register(subscriber_id, password)

    def auth_on_register_m5(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                            password: bytes | None, clean_start: bool, properties: dict) -> Any:
        return self._register(subscriber_id, password)

    def on_register(self, peer: Any, subscriber_id: tuple[str, str], username: str | None) -> None:
        self.cache.activate(*subscriber_id)

    def on_register_m5(self, peer: Any, subscriber_id: tuple[str, str], username: str | None,
                       properties: dict) -> None:
        self.cache.activate(*subscriber_id)

    def auth_on_publish(self, username: str | None, subscriber_id: tuple[str, str], qos: int, topic: str,
                        payload: bytes, is_retain: bool) -> Any:
        answer = self.cache.match_publish(*subscriber_id, qos, topic, payload, is_retain)
        if answer is None:
            return NEXT
        if answer is False:
            return ERROR, "not_authorized"
        return OK

    def auth_on_publish_m5(self, username: str | None, subscriber_id: tuple[str, str], qos: int, topic: str,
                           payload: bytes, is_retain: bool, properties: dict) -> Any:
        return self.auth_on_publish(username, subscriber_id, qos, topic, payload, is_retain)

    def auth_on_subscribe(self, username: str | None, subscriber_id: tuple[str, str],
                          topics: list[tuple[str, int]]) -> Any:
        answers = [self.cache.match_subscribe(*subscriber_id, f, q) for f, q in topics]
        if any(a is None for a in answers):
            return NEXT
        return OK if all(answers) else (ERROR, "not_authorized")

    def auth_on_subscribe_m5(self, username: str | None, subscriber_id: tuple[str, str],
                             topics: list[tuple[str, int]], properties: dict) -> Any:
        return self.auth_on_subscribe(username, subscriber_id, topics)

    def on_client_offline(self, subscriber_id: tuple[str, str]) -> None:
        self.cache.clear(*subscriber_id)

    def on_client_gone(self, subscriber_id: tuple[str, str]) -> None:
        self.cache.clear(*subscriber_id)

    def on_session_expired(self, subscriber_id: tuple[str, str]) -> None:
        self.cache.clear(*subscriber_id)


def start(settings: dict[str, Any], ctx: Any) -> JwtPlugin:
    return JwtPlugin(settings, ctx.metrics)
