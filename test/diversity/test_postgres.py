"""vmq_diversity with VerneMQ's auth/postgres.lua, unchanged, against a real PostgreSQL.

Client-side bcrypt (password_hash_method = bcrypt) for the shared cases; server-side crypt()
(pgcrypto, VerneMQ's default) separately; then the database stopped under a running node.
"""

from __future__ import annotations

import json
import select

import pytest
from authcases import *  # noqa: F403 (the shared cases run here against PostgreSQL)
from authcases import pub
from authdb import POSTGRES_SCHEMA, diversity_conf, seed_rows
from authkit import BAD_CREDENTIALS, V3, V5, connack, connected
from broker import Broker, wait_until
from clients import Raw

from vmqpy.mqtt import packets as P

TABLE_ROWS = seed_rows()


class Rows:
    def __init__(self, server) -> None:
        self.server = server

    def load(self) -> None:
        with self.server.connect() as conn:
            conn.execute(POSTGRES_SCHEMA)
            conn.execute("DELETE FROM vmq_auth_acl")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO vmq_auth_acl VALUES (%s, %s, %s, %s, %s, %s)", TABLE_ROWS)

    def set_publish_acl(self, username: str, acl: list) -> None:
        with self.server.connect() as conn:
            conn.execute("UPDATE vmq_auth_acl SET publish_acl = %s WHERE username = %s", (json.dumps(acl), username))

    reset = load


@pytest.fixture(scope="module")
def rows(postgres):
    table = Rows(postgres)
    table.load()
    return table


@pytest.fixture(scope="module")
def node(tmp_path_factory, postgres, rows):
    node = Broker(tmp_path_factory.mktemp("pg"), diversity_conf(
        "postgres", postgres, **{"vmq_diversity.postgres.password_hash_method": "bcrypt"})).start()
    yield node
    node.stop()
    node.cleanup()


def test_server_side_crypt_of_pgcrypto(tmp_path, postgres, rows):
    node = Broker(tmp_path / "crypt", diversity_conf("postgres", postgres)).start()  # crypt: the default
    try:
        assert connack(node.port, V5, "dev-1", "alice", "alice-pw") == 0
        assert connack(node.port, V5, "dev-1", "alice", "wrong") == BAD_CREDENTIALS[V5]
        assert connack(node.port, V5, "dev-1", "x' OR '1'='1", "' OR '1'='1") == BAD_CREDENTIALS[V5]
    finally:
        node.stop()
        node.cleanup()


def _metric(node: Broker, name: str) -> int:
    ok, out = node.admin("metrics", "show")
    assert ok, out
    for line in out.splitlines():
        if line.startswith(f"counter.{name} ="):
            return int(line.split("=")[1])
    raise AssertionError(f"{name} not in metrics show")


def test_database_stopped_mid_run(tmp_path, postgres, rows):
    """Stopped: CONNECTs get server unavailable, connected clients keep their cached ACLs, the node
    stays up, one log line for the outage; back: CONNECTs succeed again."""
    node = Broker(tmp_path / "outage", diversity_conf(
        "postgres", postgres, **{"vmq_diversity.postgres.password_hash_method": "bcrypt"})).start()
    online = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        postgres.stop()
        for i in range(5):
            assert connack(node.port, V3, f"c{i}", "bob", "bob-pw") == 3  # server unavailable
            assert connack(node.port, V5, f"c{i}", "bob", "bob-pw") == 0x88
        assert node.ping()
        assert pub(online, "dev/alice/still-cached") == 0
        assert node.log_text().count("unavailable:") == 1
        assert _metric(node, "diversity_db_outages") == 1
        assert _metric(node, "diversity_db_errors") >= 10
        postgres.start()
        wait_until(lambda: connack(node.port, V5, "back", "bob", "bob-pw") == 0, 20, "recovery")
        assert "available again" in node.log_text()
    finally:
        online.close()
        if postgres.proc.poll() is not None:
            postgres.start()
        node.stop()
        node.cleanup()



def test_a_database_restart_between_calls_costs_no_client_a_refusal(node, postgres):
    assert connack(node.port, V5, "r1", "bob", "bob-pw") == 0  # the pool holds a connection now
    postgres.stop()
    postgres.start()
    assert connack(node.port, V5, "r2", "bob", "bob-pw") == 0  # the stale one is dropped and retried


SLOW_SCRIPT = """
num_states = 2  -- one state serves one call at a time: the fast CONNECT needs the other
postgres.ensure_pool({pool_id = "slow"})
function auth_on_register(reg)
    if reg.username == "slow" then
        return postgres.execute("slow", "SELECT pg_sleep(30)") ~= false
    end
    return reg.username == "fast"
end
hooks = {auth_on_register = auth_on_register, auth_on_register_m5 = auth_on_register}
"""


def test_a_slow_database_blocks_neither_the_hub_nor_past_the_query_timeout(tmp_path, postgres):
    """A CONNECT waiting on a query parks its greenlet only: another CONNECT is answered meanwhile;
    the slow one is answered server unavailable once query_timeout (5 s) has passed, not after 30 s."""
    script = tmp_path / "slow.lua"
    script.write_text(SLOW_SCRIPT)
    node = Broker(tmp_path / "slow", {**diversity_conf("postgres", postgres, **{
        "vmq_diversity.query_timeout": "5000"}), "vmq_diversity.auth_postgres.enabled": "off",
        "vmq_diversity.slow.file": str(script)}).start()
    slow = Raw(node.port, V5)
    try:
        slow.send(P.Connect("s1", proto_level=V5, username="slow", password=b"x"))
        assert connack(node.port, V5, "f1", "fast", "x") == 0
        assert select.select([slow.sock], [], [], 0)[0] == []  # the slow CONNECT is still waiting
        ack = slow.recv(timeout=20)
        assert ack is not None and ack.reason_code == 0x88, ack
        assert "no answer within 5 s" in node.log_text()
    finally:
        slow.close()
        node.stop()
        node.cleanup()


def test_cockroachdb_lua_over_the_postgres_wire(tmp_path, postgres, rows):
    """auth/cockroachdb.lua unchanged, with its default bcrypt method, against PostgreSQL itself
    (no CockroachDB server here; its sha256 method is CockroachDB-only SQL)."""
    node = Broker(tmp_path / "crdb", diversity_conf("cockroachdb", postgres,
                                                   **{"vmq_diversity.cockroachdb.ssl": "off"})).start()
    try:
        raw = connected(node.port, V5, "dev-1", "alice", "alice-pw")
        try:
            assert pub(raw, "dev/alice/x") == 0 and pub(raw, "dev/bob/x") == 0x87
        finally:
            raw.close()
        assert connack(node.port, V5, "dev-1", "alice", "wrong") == BAD_CREDENTIALS[V5]
    finally:
        node.stop()
        node.cleanup()
