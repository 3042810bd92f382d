"""Test plugin: a two-step challenge/response enhanced authentication (method VMQ-CHALLENGE).

1. CONNECT (or AUTH 0x19) carries authentication_data b"hello"; the plugin
   answers AUTH 0x18 with b"challenge:<nonce>".
2. The client answers AUTH 0x18 with b"response:<nonce>"; the plugin accepts
   with authentication_data b"welcome" and a user property, or refuses.
Any other method is not this plugin's business ("next").
"""

from __future__ import annotations

import itertools
from typing import Any

METHOD = "VMQ-CHALLENGE"


class ChallengeAuth:
    def __init__(self) -> None:
        self._nonces = itertools.count(1)
        self._expected: dict[tuple[str, str], bytes] = {}

    def on_auth_m5(self, username, subscriber_id, properties: dict) -> Any:
        if properties.get("authentication_method") != METHOD:
            return "next"
        data = properties.get("authentication_data", b"")
        if data == b"hello":
            nonce = str(next(self._nonces)).encode()
            self._expected[subscriber_id] = b"response:" + nonce
            return "ok", {"reason_code": 0x18, "properties": {"authentication_data": b"challenge:" + nonce}}
        if data and data == self._expected.pop(subscriber_id, None):
            return "ok", {"properties": {"authentication_data": b"welcome",
                                         "user_property": [("auth", "challenge")]}}
        return "error", "bad_response"


def start(settings: dict, ctx: object) -> ChallengeAuth:
    return ChallengeAuth()
