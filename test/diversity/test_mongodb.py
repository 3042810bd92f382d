"""The mongodb module and VerneMQ's auth/mongodb.lua without a MongoDB server (none can be installed
here): the client options, the ObjectId mapping, the script loading unchanged, and a node whose
MongoDB is unreachable answering "server unavailable". Not tested: queries against a server."""

from __future__ import annotations

from authdb import diversity_conf
from authkit import V3, V5, connack
from broker import Broker, free_port
from bson import ObjectId

from vmqpy.plugins.vmq_diversity.mongodb import client_options, from_doc, to_doc

OPTS = {"host": "db.example", "port": "27017", "pool_size": "7", "read_preference": "secondaryPreferred",
        "w_mode": "safe", "login": "vmq", "password": "pw", "auth_source": "users", "ssl": False}


def test_client_options_follow_the_vernemq_keys():
    out = client_options(OPTS, 2.5)
    assert out["host"] == "db.example" and out["port"] == 27017 and out["maxPoolSize"] == 7
    assert (out["username"], out["password"], out["authSource"]) == ("vmq", "pw", "users")
    assert out["readPreference"] == "secondaryPreferred" and out["w"] == 1
    assert out["serverSelectionTimeoutMS"] == out["socketTimeoutMS"] == 2500
    srv = client_options({**OPTS, "srv": "cluster.example", "login": None, "ssl": True, "ssl.verify": "verify_none",
                          "cafile": "/ca.pem"}, 1)
    assert srv["host"] == "mongodb+srv://cluster.example" and "port" not in srv and "username" not in srv
    assert srv["tls"] and srv["tlsAllowInvalidCertificates"] and srv["tlsCAFile"] == "/ca.pem"


def test_object_ids_travel_through_lua_as_vernemq_spells_them():
    oid = ObjectId()
    doc = {"_id": oid, "acl": [{"pattern": "a/#"}], "n": 1}
    lua = from_doc(doc)
    assert lua["_id"] == f"vmq-objid{oid}"
    assert to_doc(lua) == doc


def test_auth_mongodb_lua_with_the_database_unreachable(tmp_path):
    server = type("Closed", (), {"port": free_port()})()  # nothing listens there
    node = Broker(tmp_path / "mongo", diversity_conf("mongodb", server, **{"vmq_diversity.query_timeout": "500",
                                                                          "vmq_diversity.mongodb.database": "vmq"}))
    node.start()
    try:
        assert "loaded" in node.log_text() and "mongodb.lua" in node.log_text()
        assert connack(node.port, V5, "c1", "alice", "pw") == 0x88
        assert connack(node.port, V3, "c2", "alice", "pw") == 3
        assert node.log_text().count("unavailable:") == 1
    finally:
        node.stop()
        node.cleanup()
