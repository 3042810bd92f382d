"""Shared fixtures: real nodes in subprocesses, on free ports, in temp dirs."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker import Broker  # noqa: E402
from pkikit import pki  # noqa: E402, F401 (the test certificates fixture)

_ids = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One node shared by a module's tests (tests use distinct client ids and topics)."""
    node = Broker(tmp_path_factory.mktemp("node")).start()
    yield node
    node.stop()
    node.cleanup()


@pytest.fixture
def make_broker(tmp_path):
    """Factory for nodes owned by one test: make_broker(conf={...}, acl=...)."""
    nodes: list[Broker] = []

    def make(conf: dict[str, str] | None = None, start: bool = True, **kw) -> Broker:
        node = Broker(tmp_path / f"node{len(nodes)}", conf, **kw)
        nodes.append(node)
        return node.start() if start else node

    yield make
    for node in nodes:
        node.kill()
        node.cleanup()


@pytest.fixture
def cid(request) -> str:
    """A client id unique to this test."""
    return f"{request.node.name[:40]}-{next(_ids)}"
