"""VerneMQ's vmq_auth_acl layout with sample rows, and a node that authenticates against it.

The rows hold bcrypt hashes (`$2a$`, which both Python's bcrypt and PostgreSQL's pgcrypto read);
tests use cost 4 to stay quick, the bench uses VerneMQ's sample cost 12.
"""

from __future__ import annotations

import json

import bcrypt

TEST_COST = 4

# (client_id, username, password, publish_acl, subscribe_acl); mountpoint "" throughout
ROWS = [
    ("dev-1", "alice", "alice-pw",
     [{"pattern": "dev/%u/#"}, {"pattern": "up/%c", "max_qos": 1}, {"pattern": "noretain/%u", "allowed_retain": False},
      {"pattern": "small/%u", "max_payload_size": 4}],
     [{"pattern": "dev/%u/#"}, {"pattern": "cmd/%c/+", "max_qos": 1}]),
    ("*", "bob", "bob-pw", [{"pattern": "dev/%u/#"}], [{"pattern": "dev/%u/#"}]),
    # usernames that would be wildcards or extra levels once substituted into dev/%u/#
    ("*", "+", "plus-pw", [{"pattern": "dev/%u/#"}], [{"pattern": "dev/%u/#"}]),
    ("*", "#", "hash-pw", [{"pattern": "dev/%u/#"}], [{"pattern": "dev/%u/#"}]),
    ("*", "a/b", "slash-pw", [{"pattern": "dev/%u/#"}], [{"pattern": "dev/%u/#"}]),
]

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS vmq_auth_acl (
    mountpoint character varying(10) NOT NULL,
    client_id character varying(128) NOT NULL,
    username character varying(128) NOT NULL,
    password character varying(128),
    publish_acl json,
    subscribe_acl json,
    CONSTRAINT vmq_auth_acl_primary_key PRIMARY KEY (mountpoint, client_id, username)
)"""

MYSQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS vmq_auth_acl (
    mountpoint VARCHAR(10) NOT NULL,
    client_id VARCHAR(128) NOT NULL,
    username VARCHAR(128) NOT NULL,
    password VARCHAR(128),
    publish_acl TEXT,
    subscribe_acl TEXT,
    CONSTRAINT vmq_auth_acl_primary_key PRIMARY KEY (mountpoint, client_id, username)
)"""


def bcrypt_hash(password: str, cost: int = TEST_COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost, prefix=b"2a")).decode()


def seed_rows(cost: int = TEST_COST) -> list[tuple]:
    return [("", cid, user, bcrypt_hash(pw, cost), json.dumps(pub), json.dumps(sub))
            for cid, user, pw, pub, sub in ROWS]


def diversity_conf(db: str, server, **extra: str) -> dict[str, str]:
    """A node where vmq_diversity's auth_<db> script alone decides (vmq_passwd and vmq_acl off)."""
    conf = {"allow_anonymous": "off", "plugins.vmq_passwd": "off", "plugins.vmq_acl": "off",
            "plugins.vmq_diversity": "on", f"vmq_diversity.auth_{db}.enabled": "on",
            f"vmq_diversity.{db}.host": "127.0.0.1", f"vmq_diversity.{db}.port": str(server.port),
            "vmq_diversity.query_timeout": "2000"}
    for key in ("user_name", "password", "database"):
        if hasattr(server, key):
            conf[f"vmq_diversity.{db}.{'user' if key == 'user_name' else key}"] = getattr(server, key)
    conf.update(extra)
    return conf
