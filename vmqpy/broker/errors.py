"""The exception a connection greenlet raises to end its connection."""

from __future__ import annotations


class Disconnect(Exception):
    """Close the connection; v5 clients get a DISCONNECT with `reason_code` first.

    The message becomes the DISCONNECT's Reason String, so it says why in words
    a client author understands.
    """

    def __init__(self, reason_code: int, why: str) -> None:
        super().__init__(why)
        self.reason_code = reason_code
