"""vmq_diversity with VerneMQ's auth/mysql.lua and auth/mysql2.lua, unchanged, against a real MariaDB.

The scripts compare the password in SQL (`password = SHA2(?, 256)` etc.), so the rows hold the
hash MariaDB computes for each password_hash_method.
"""

from __future__ import annotations

import json

import pytest
from authcases import *  # noqa: F403 (the shared cases run here against MariaDB)
from authdb import MYSQL_SCHEMA, ROWS, diversity_conf
from authkit import BAD_CREDENTIALS, V5, connack
from broker import Broker

HASH_SQL = {"sha256": "SHA2(%s, 256)", "md5": "MD5(%s)", "sha1": "SHA1(%s)", "password": "PASSWORD(%s)"}


class Rows:
    def __init__(self, server, method: str = "sha256") -> None:
        self.server = server
        self.method = method

    def load(self) -> None:
        with self.server.connect() as conn, conn.cursor() as cur:
            cur.execute(MYSQL_SCHEMA)
            cur.execute("DELETE FROM vmq_auth_acl")
            for cid, user, pw, pub, sub in ROWS:
                cur.execute(f"INSERT INTO vmq_auth_acl VALUES ('', %s, %s, {HASH_SQL[self.method]}, %s, %s)",
                            (cid, user, pw, json.dumps(pub), json.dumps(sub)))

    def set_publish_acl(self, username: str, acl: list) -> None:
        with self.server.connect() as conn, conn.cursor() as cur:
            cur.execute("UPDATE vmq_auth_acl SET publish_acl = %s WHERE username = %s", (json.dumps(acl), username))

    reset = load


@pytest.fixture(scope="module")
def rows(mariadb):
    table = Rows(mariadb)
    table.load()
    return table


@pytest.fixture(scope="module")
def node(tmp_path_factory, mariadb, rows):
    # mysql2.lua also selects client_id, so the client_id = '*' default row works as in postgres.lua
    node = Broker(tmp_path_factory.mktemp("mysql2"), diversity_conf("mysql2", mariadb)).start()
    yield node
    node.stop()
    node.cleanup()


@pytest.mark.parametrize("method", ["md5", "password"])
def test_mysql_lua_with_other_hash_methods(tmp_path, mariadb, rows, method):
    Rows(mariadb, method).load()
    node = Broker(tmp_path / method, diversity_conf(
        "mysql", mariadb, **{"vmq_diversity.mysql.password_hash_method": method})).start()
    try:
        assert connack(node.port, V5, "dev-1", "alice", "alice-pw") == 0
        assert connack(node.port, V5, "any", "bob", "bob-pw") == 0
        assert connack(node.port, V5, "dev-1", "alice", "wrong") == BAD_CREDENTIALS[V5]
        assert connack(node.port, V5, "dev-1", "alice' OR '1'='1", "x' OR '1'='1") == BAD_CREDENTIALS[V5]
    finally:
        rows.load()
        node.stop()
        node.cleanup()
