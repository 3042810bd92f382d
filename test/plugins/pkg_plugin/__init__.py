"""Test plugin shipped as a package, importing a sibling module relatively."""

from .policy import DENIED_USER


class DenyOne:
    def auth_on_register(self, peer, subscriber_id, username, password, clean_session):
        return ("error", "banned") if username == DENIED_USER else "next"


def start(settings: dict, ctx: object) -> DenyOne:
    return DenyOne()
