"""MQTT 5 enhanced authentication: the AUTH exchange behind the on_auth_m5 hook (spec 4.12).

A CONNECT carrying an Authentication Method starts an exchange; each step
runs the on_auth_m5 chain, whose answer either continues (AUTH 0x18 with the
plugin's challenge), succeeds (CONNACK, or AUTH 0x00 on re-authentication) or
fails (CONNACK / DISCONNECT with the reason code). A connected client starts a
re-authentication with AUTH 0x19 and the method it connected with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmqpy.broker.errors import Disconnect
from vmqpy.mqtt import packets as P
from vmqpy.mqtt import reasons as R

if TYPE_CHECKING:
    from vmqpy.broker.session import Session

_AUTH_PROPS = ("authentication_method", "authentication_data", "user_property")


class AuthFailed(Exception):
    def __init__(self, reason_code: int, why: str) -> None:
        super().__init__(why)
        self.reason_code = reason_code


class Exchange:
    """One exchange in progress; `connect` is the CONNECT it authenticates (None: re-auth)."""

    __slots__ = ("session", "method", "connect")

    def __init__(self, session: Session, method: str, connect: P.Connect | None) -> None:
        self.session = session
        self.method = method
        self.connect = connect

    def step(self, props: dict) -> dict | None:
        """Run on_auth_m5 on the client's properties: the success properties, or None to continue."""
        s = self.session
        res, val = s.node.hooks.all_till_ok("on_auth_m5", s.username, s.sid,
                                            {k: props[k] for k in _AUTH_PROPS if k in props})
        if res == "next":
            raise AuthFailed(R.BAD_AUTHENTICATION_METHOD, f"authentication method {self.method!r} not supported")
        if res == "error":
            code = R.BAD_AUTHENTICATION_METHOD if val == "bad_authentication_method" else R.NOT_AUTHORIZED
            raise AuthFailed(code, f"authentication failed ({val})")
        code = val.get("reason_code", R.SUCCESS)
        out = {**(val.get("properties") or {}), "authentication_method": self.method}
        if code == R.CONTINUE_AUTHENTICATION:
            s.counters["mqtt_auth_sent"] += 1
            s.node.metrics.count_code("mqtt_auth_sent", 5, R.CONTINUE_AUTHENTICATION)
            s.send_packet(P.Auth(R.CONTINUE_AUTHENTICATION, out))
            return None
        if code != R.SUCCESS:
            raise AuthFailed(code, f"authentication failed (reason 0x{code:02x})")
        return out


def start(session: Session, connect: P.Connect, method: str, props: dict) -> dict | None:
    """First step of a CONNECT's exchange; raises AuthFailed."""
    session.auth_method = method
    exchange = Exchange(session, method, connect)
    result = exchange.step(props)
    session.auth = None if result is not None else exchange
    return result


def on_auth(session: Session, p: P.Auth) -> None:
    """An AUTH packet from the client: the next step, or the start of a re-authentication."""
    props = p.properties or {}
    exchange = session.auth
    if exchange is None:
        if not (session.connected and session.auth_method and p.reason_code == R.RE_AUTHENTICATE):
            raise Disconnect(R.PROTOCOL_ERROR, "AUTH outside an authentication exchange")
        exchange = session.auth = Exchange(session, session.auth_method, None)
    elif p.reason_code != R.CONTINUE_AUTHENTICATION:
        raise Disconnect(R.PROTOCOL_ERROR, f"AUTH reason 0x{p.reason_code:02x} during an exchange")
    if props.get("authentication_method") != exchange.method:
        raise Disconnect(R.PROTOCOL_ERROR, "authentication method differs from the one in CONNECT")
    try:
        result = exchange.step(props)
    except AuthFailed as e:
        session.auth = None
        if exchange.connect is not None:
            return session.refuse(5, e.reason_code, str(e))
        raise Disconnect(e.reason_code, str(e)) from None
    if result is None:
        return None
    session.auth = None
    if exchange.connect is not None:
        return session.finish_connect(exchange.connect, result)
    session.counters["mqtt_auth_sent"] += 1
    session.node.metrics.count_code("mqtt_auth_sent", 5, R.SUCCESS)
    return session.send_packet(P.Auth(R.SUCCESS, result))
