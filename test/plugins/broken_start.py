"""Test plugin whose start() fails, as a plugin with a bad configuration does."""


def start(settings: dict, ctx: object) -> object:
    raise RuntimeError("cannot reach the auth database")
