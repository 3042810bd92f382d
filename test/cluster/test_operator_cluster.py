"""The operator commands that act on the whole cluster, and the cluster's status page, on three nodes.

`VMQPY_STATUS_SCREENSHOT=docs/status-page.png pytest test/cluster/test_operator_cluster.py -k status`
also keeps the phone-sized screenshot of the three nodes there (docs/migrating-admin.md shows it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest
from broker import REPO, free_port, wait_until

sys.path.insert(0, str(REPO / "test"))
import chromium  # noqa: E402
from clients import Raw  # noqa: E402


def _sessions(node) -> set[str]:
    return {r["client_id"] for r in node.rows("session", "show", "--is_online=true", "--client_id")}


@pytest.mark.parametrize("mode", ["loopback"], indirect=True)
def test_session_disconnect_unsubscribe_and_batch_reach_every_node(cluster_nodes, cid):
    a, b, c = cluster_nodes(3)
    raws = {}
    for node, name in ((b, "b"), (c, "c1"), (c, "c2")):
        raws[name] = Raw(node.port, host=node.mqtt_host)
        assert raws[name].connect(f"{cid}-{name}", clean=False).reason_code == 0
    sub = b.client(f"{cid}-sub")
    sub.connect()
    sub.subscribe(f"{cid}/a", 1)
    sub.subscribe(f"{cid}/b", 1)

    assert a.admin("session", "disconnect", f"client-id={cid}-b") == (True, "Done")  # typed on a, client on b
    assert raws["b"].closed_by_broker()
    assert a.admin("session", "unsubscribe", f"client-id={cid}-sub", f"topic={cid}/a") == (True, "Done")
    assert b.rows("session", "show", f"--client_id={cid}-sub", "--topic") == [{"topic": f"{cid}/b"}]
    assert a.admin("session", "unsubscribe", f"client-id={cid}-nobody", f"topic={cid}/a") == \
        (True, "Not successfull")
    # count is per node; --node limits it to c
    assert a.admin("session", "disconnect", "batch", "count=1", f"--node={c.nodename}") == (True, "Done")
    wait_until(lambda: len(_sessions(c) & {f"{cid}-c1", f"{cid}-c2"}) == 1, what="one of c's clients gone")
    assert f"{cid}-sub" in _sessions(b)
    assert a.admin("session", "disconnect", "clients", f"client-ids={cid}-c1,{cid}-c2", "-c") == (True, "Done")
    wait_until(lambda: not _sessions(c) & {f"{cid}-c1", f"{cid}-c2"}, what="c's clients gone")
    wait_until(lambda: not {r["client_id"] for r in c.rows("session", "show", "--client_id")}
               & {f"{cid}-c1", f"{cid}-c2"}, what="their sessions cleaned up on c")
    sub.disconnect()
    for r in raws.values():
        r.close()


@pytest.mark.skipif(not chromium.available(), reason="needs chromium (test/install-deps.sh)")
@pytest.mark.parametrize("mode", ["loopback"], indirect=True)
def test_status_page_shows_every_node_and_one_that_goes_away(cluster_nodes, cid, tmp_path):
    port = free_port()
    a, b, c = cluster_nodes(3)
    a.stop()
    a.conf["listener.http.default"] = f"{a.mqtt_host}:{port}"
    a.start()
    wait_until(lambda: all(row["Running"] == "true" for row in a.rows("cluster", "show")), 20, "a back")
    url = f"http://{a.mqtt_host}:{port}/status"
    done = threading.Event()
    clients = []
    for k, node in enumerate((a, b, c)):
        s = node.client(f"{cid}-s{k}")
        s.connect()
        s.subscribe(f"{cid}/#", 1)
        p = node.client(f"{cid}-p{k}")
        p.connect()
        clients += [s, p]

        def publish(p=p, k=k) -> None:
            while not done.is_set():
                p.publish(f"{cid}/{k}", "x", qos=1)

        threading.Thread(target=publish, daemon=True).start()
    try:
        html = chromium.dom(url, budget_ms=12_000)
        for node in (a, b, c):
            card = re.search(rf'<section class="node" data-node="{re.escape(node.nodename)}">(.*?)</section>',
                             html, re.S)
            assert card and '<span class="state">running</span>' in card.group(1), node.nodename
            assert re.search(r'data-metric="msg_in" data-points="([2-9]|\d\d)"', card.group(1))
        assert "<b>3/3</b><span>nodes running</span>" in html
        shot = chromium.screenshot(url, tmp_path / "status.png", size=(390, 1900), budget_ms=12_000)
        keep = os.environ.get("VMQPY_STATUS_SCREENSHOT")
        if keep:
            shutil.copy(shot, Path(REPO, keep))
        _, _, rgb = chromium.pixels(shot)
        assert chromium.has_colour(rgb, (0x1A, 0x7F, 0x37), at_least=60)  # three "running" badges
    finally:
        done.set()
    c.kill()
    wait_until(lambda: any(r["Running"] == "false" for r in a.rows("cluster", "show")), 20, "c seen down")
    html = chromium.dom(url, budget_ms=4_000)
    card = re.search(rf'<section class="node down" data-node="{re.escape(c.nodename)}">(.*?)</section>', html, re.S)
    assert card and "not reachable" in card.group(1)
    assert f"{c.nodename} is not reachable." in html and "<b>2/3</b>" in html
    for client in clients[:4]:
        client.disconnect()


@pytest.mark.parametrize("mode", ["loopback"], indirect=True)
def test_config_show_scopes_and_reset_across_the_cluster(cluster_nodes):
    a, b = cluster_nodes(2)
    assert a.admin("set", "max_inflight_messages=7", "--all")[0]
    show = ("config", "show", "app=vmq_server", "--key=max_inflight_messages")
    wait_until(lambda: b.admin(*show) == (True, "Scope: global\nValue: 7"), what="the value set --all on b")
    assert b.admin("set", "max_inflight_messages=9")[0]  # b's own value over the cluster's
    assert b.admin(*show) == (True, "Scope: node\nValue: 9")
    assert b.admin("config", "reset", "app=vmq_server", "--key=max_inflight_messages", "--local") == (True, "Done")
    assert b.admin(*show) == (True, "Scope: global\nValue: 7")  # the cluster's value applies again
    assert a.admin("config", "reset", "app=vmq_server", "--key=max_inflight_messages", "--global") == (True, "Done")
    wait_until(lambda: not any(r["Global"] for r in b.rows("config", "show", "app=vmq_server")
                               if r["Config"] == "max_inflight_messages"), what="the cluster's value gone on b")
