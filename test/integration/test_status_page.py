"""The status page (/status) in headless Chromium against a real node under load: the node's card,
its figures and rate charts in the DOM; a phone-sized screenshot showing them (colours checked)."""

from __future__ import annotations

import re
import threading

import chromium
import pytest
from broker import free_port
from clients import Paho

pytestmark = pytest.mark.skipif(not chromium.available(), reason="needs chromium (test/install-deps.sh)")
GREEN, BLUE, PURPLE = (0x1A, 0x7F, 0x37), (0x09, 0x69, 0xDA), (0x82, 0x50, 0xDF)


@pytest.fixture
def loaded_node(make_broker, cid):
    """A node with an HTTP listener, a subscriber, and a publisher sending QoS 1 until the test ends."""
    port = free_port()
    node = make_broker({"listener.http.default": f"127.0.0.1:{port}"})
    node.url = f"http://127.0.0.1:{port}/status"
    sub = Paho(node.port, cid + "-s")
    sub.connect()
    sub.subscribe(f"{cid}/#", 1)
    pub = Paho(node.port, cid + "-p")
    pub.connect()
    done = threading.Event()

    def publish() -> None:
        while not done.is_set():
            pub.publish(f"{cid}/load", "x", qos=1)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    yield node
    done.set()
    t.join(10)
    for c in (pub, sub):
        c.disconnect()


def test_the_page_shows_the_node_its_figures_and_charts(loaded_node):
    html = chromium.dom(loaded_node.url)
    card = re.search(r'<section class="node" data-node="VerneMQ@127.0.0.1">(.*?)</section>', html, re.S)
    assert card, html[-2000:]
    assert '<span class="state">running</span>' in card.group(1)
    assert "<dt>Online clients</dt><dd>2</dd>" in card.group(1)
    for metric in ("msg_in", "msg_out", "queued"):
        points = re.search(rf'data-metric="{metric}" data-points="(\d+)"', card.group(1))
        assert points and int(points.group(1)) >= 2, metric  # several refreshes drew a line
    assert re.search(r"<b>[1-9][\d.k]*/s</b><span>messages in</span>", html)  # a rate, not 0/s
    assert '<b>1/1</b><span>nodes running</span>' in html and '<ul id="issues"></ul>' in html


def test_a_phone_screenshot_shows_the_card_and_the_charts(loaded_node, tmp_path):
    shot = chromium.screenshot(loaded_node.url, tmp_path / "status.png")
    width, height, rgb = chromium.pixels(shot)
    assert (width, height) == chromium.PHONE
    assert chromium.has_colour(rgb, GREEN)  # the "running" badge
    assert chromium.has_colour(rgb, BLUE) and chromium.has_colour(rgb, PURPLE)  # messages in / out lines
