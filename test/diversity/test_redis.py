"""vmq_diversity with VerneMQ's auth/redis.lua, unchanged, against a real redis-server.

The layout of redis.lua: the key is the JSON array [mountpoint, client_id, username], the value
a JSON object with passhash (bcrypt), publish_acl and subscribe_acl.
"""

from __future__ import annotations

import json

import pytest
from authcases import *  # noqa: F403 (the shared cases run here against Redis)
from authcases import pub
from authdb import ROWS, bcrypt_hash, diversity_conf
from authkit import V5, connack, connected
from broker import Broker, wait_until


def _key(cid: str, user: str) -> str:
    return json.dumps(["", cid, user], separators=(",", ":"))


class Rows:
    def __init__(self, server) -> None:
        self.server = server

    def load(self) -> None:
        client = self.server.client()
        client.flushall()
        for cid, user, pw, publish, subscribe in ROWS:
            client.set(_key(cid, user), json.dumps({"passhash": bcrypt_hash(pw), "publish_acl": publish,
                                                    "subscribe_acl": subscribe}))

    def set_publish_acl(self, username: str, acl: list) -> None:
        client = self.server.client()
        for key in client.keys("*"):
            value = json.loads(client.get(key))
            if json.loads(key)[2] == username:
                value["publish_acl"] = acl
                client.set(key, json.dumps(value))

    reset = load


@pytest.fixture(scope="module")
def rows(redis_server):
    table = Rows(redis_server)
    table.load()
    return table


@pytest.fixture(scope="module")
def node(tmp_path_factory, redis_server, rows):
    node = Broker(tmp_path_factory.mktemp("redis"), diversity_conf("redis", redis_server)).start()
    yield node
    node.stop()
    node.cleanup()


def test_redis_stopped_and_back(tmp_path, redis_server, rows):
    node = Broker(tmp_path / "outage", diversity_conf("redis", redis_server)).start()
    online = connected(node.port, V5, "dev-1", "alice", "alice-pw")
    try:
        redis_server.stop()
        assert connack(node.port, V5, "c1", "bob", "bob-pw") == 0x88
        assert pub(online, "dev/alice/cached") == 0
        assert node.log_text().count("unavailable:") == 1
        redis_server.start()
        rows.load()  # the server keeps nothing on disk here
        wait_until(lambda: connack(node.port, V5, "back", "bob", "bob-pw") == 0, 20, "recovery")
    finally:
        online.close()
        if redis_server.proc.poll() is not None:
            redis_server.start()
            rows.load()
        node.stop()
        node.cleanup()
