"""The decoder fuzzer (bench/fuzz: atheris over the Python loop and its compiled twin, checked
against each other and across ways of cutting the input): a short run, and every input it
ever found, kept here so that it stays fixed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import codeckit
import pytest

from vmqpy.mqtt import codec

REPO = Path(__file__).resolve().parents[2]

# (what it found, the input as bench/fuzz wrote it, the error it must now give or None).
# (what it found, the input bench/fuzz wrote (see codeckit.Recipe), the error it must now give or None).
FOUND = [
    ("a lone 4-byte PUBACK skipped a max packet size below 4, refused when more bytes came with it",
     bytes.fromhex("260240020002"), "PacketTooLarge"),
]


@pytest.mark.parametrize("why, data, error", FOUND, ids=[f[0][:40] for f in FOUND])
def test_fuzz_find_stays_fixed(why, data, error):
    outcome = codeckit.check(data)  # raises on a divergence between decoders or ways of feeding
    assert (outcome.error[0] if outcome.error else None) == error


def test_short_fuzz_run_finds_nothing(tmp_path):
    """About a minute of bench/fuzz: no crash, hang (an input over 10 s) or divergence."""
    cmd = [sys.executable, str(REPO / "bench" / "fuzz"), "--runs", "0", "--max-time", "50", "--seed", "15",
           "--artifacts", str(tmp_path / "found"), "--log", str(tmp_path / "fuzz.log")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    log = (tmp_path / "fuzz.log").read_text()
    assert proc.returncode == 0, log[-6000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["found"] == []
    assert result["decoders"] == {"python": True, "compiled": codec._scan is not None}
    assert result["runs"] > 10_000, result
