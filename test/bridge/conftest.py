"""Fixtures of the bridge tests (helpers in bridgekit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tests import their helpers by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridgekit import MOSQUITTO, Mosquitto  # noqa: E402
from pki import Pki  # noqa: E402


@pytest.fixture
def mosquitto(tmp_path):
    """Factory: mosquitto(pki=None, start=True)."""
    started: list[Mosquitto] = []

    def make(pki: Pki | None = None, start: bool = True) -> Mosquitto:
        m = Mosquitto(tmp_path / f"mosquitto{len(started)}", pki)
        started.append(m)
        return m.start() if start else m

    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (test/install-deps.sh installs it as root)")
    yield make
    for m in started:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()
