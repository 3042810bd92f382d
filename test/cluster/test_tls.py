"""Cluster links over TLS (listener.vmqs): certificates both ways, then the cookie; a worker that did
not accept a link gets it through the worker that did."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from broker import wait_until
from clusterkit import running, same_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=d)


def _node_cert(d: Path, ca: str, name: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text("extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clusterpki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _node_cert(d, "ca", "node")
    _node_cert(d, "other-ca", "stranger")
    return d


def _tls(host, cport: int, d: Path, cert: str) -> dict[str, str]:
    key = "listener.vmqs.clustering"
    return {key: f"{host.ip}:{cport}", f"{key}.certfile": str(d / f"{cert}.pem"),
            f"{key}.keyfile": str(d / f"{cert}.key"), f"{key}.cafile": str(d / "ca.pem"),
            f"{key}.require_certificate": "on", "distributed_cookie": "tls-cookie", "nr_of_workers": "2"}


def test_tls_cluster_of_two_nodes_with_two_workers_each(mode, hosts, make_node, pki, cid):
    hs = hosts(2, netns=(mode == "netns"))
    cport = same_port(hs)
    a, b = (make_node(h, _tls(h, cport, pki, "node")) for h in hs)
    ok, out = b.admin("cluster", "join", f"discovery-node={a.nodename}")
    assert ok, out
    wait_until(lambda: set(running(a).values()) == {"true"} and len(running(a)) == 2, 15, "joined")
    subs = [a.client(f"{cid}-s{i}") for i in range(4)]  # on both of a's workers
    for s in subs:
        s.connect()
        s.subscribe(f"{cid}/t", 1)
    pub = b.client(f"{cid}-p")
    pub.connect()
    pub.publish(f"{cid}/t", b"over tls", 1)
    for s in subs:
        assert s.expect(1)[0].payload == b"over tls"


def test_a_certificate_of_another_ca_cannot_join(mode, hosts, make_node, pki):
    hs = hosts(2, netns=(mode == "netns"))
    cport = same_port(hs)
    a = make_node(hs[0], _tls(hs[0], cport, pki, "node"))
    stranger = make_node(hs[1], _tls(hs[1], cport, pki, "stranger"))
    ok, out = stranger.admin("cluster", "join", f"discovery-node={a.nodename}")
    assert not ok and "did not answer" in out
    wait_until(lambda: "cluster connection from" in a.log_text() and "refused" in a.log_text(), 10, "refusal")
