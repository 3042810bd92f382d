"""Database servers shared by the vmq_diversity tests (one of each per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import MariaDB, Memcached, Postgres, Redis  # noqa: E402


def _serve(make):
    server = make()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres():
    for server in _serve(Postgres):
        server.create_database()
        yield server


@pytest.fixture(scope="session")
def mariadb():
    for server in _serve(MariaDB):
        server.create_database()
        yield server


@pytest.fixture(scope="session")
def redis_server():
    yield from _serve(Redis)


@pytest.fixture(scope="session")
def memcached_server():
    yield from _serve(Memcached)
