#!/usr/bin/env python3
"""vmqpy with timing probes on the hub path, for a latency run: where a message's time goes.

    bench/compare --only vmqpy latency-q1 --vmqpy-cmd "$PWD/.venv/bin/python $PWD/bench/latency_probe.py"

Takes the same arguments as `vernemq` (console --config F). For each wake-up of a
parked connection that writes a delivery it records, from CLOCK_MONOTONIC (the
clock of the loadgen's stamp): the stamp (the intended send time) to the start of
`Session._wake`, `_wake` to the subscriber's send, and that send syscall. Every
2,000 samples it rewrites the percentiles of the last 20,000 to --probe-out
(/tmp/vmqpy-latency-probe.txt). It wraps private methods (`Session._wake`,
`session._WAKE`, `Session.send_frames`): a diagnostic, to be kept in step with
session.py, never a test. The probes themselves add a little to the times they report.
"""

from __future__ import annotations

import struct
import sys
import time

from vmqpy.broker import session
from vmqpy.scripts.vernemq import main

OUT = "/tmp/vmqpy-latency-probe.txt"
STAMP_MAGIC = struct.pack("<I", 0x4C474231)  # bench/src/mqtt.h struct stamp: magic, pub, seq, ts_ns
NAMES = ("stamp -> wake", "wake -> subscriber send", "send syscall")

_now = time.monotonic_ns
_samples: list[tuple[int, int, int]] = []
_wake_at = 0  # the running _wake's start; 0 outside of one
_wake = session.Session._wake
_send_frames = session.Session.send_frames


def probed_wake(self: session.Session) -> None:
    global _wake_at
    _wake_at = _now()
    try:
        _wake(self)
    finally:
        _wake_at = 0


def probed_send_frames(self: session.Session, frames: list[bytes]) -> None:
    start = _wake_at
    if not start:
        return _send_frames(self, frames)
    t0 = _now()
    _send_frames(self, frames)
    t1 = _now()
    i = frames[0].find(STAMP_MAGIC)
    if i >= 0:
        stamp = struct.unpack_from("<Q", frames[0], i + 16)[0]
        _samples.append((start - stamp, t0 - start, t1 - t0))
        if len(_samples) % 2000 == 0:
            _write()


def _write() -> None:
    del _samples[:-20000]
    with open(OUT, "w") as f:
        for name, col in zip(NAMES, zip(*_samples, strict=True), strict=True):
            c = sorted(col)
            p = [c[len(c) * k // 100] / 1000 for k in (10, 50, 90, 99)]
            f.write(f"{name}: n={len(c)} p10={p[0]:.1f} p50={p[1]:.1f} p90={p[2]:.1f} p99={p[3]:.1f} us\n")


if __name__ == "__main__":
    if "--probe-out" in sys.argv:
        i = sys.argv.index("--probe-out")
        OUT = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    session.Session._wake = probed_wake
    session._WAKE = probed_wake  # the watcher callback is bound at import
    session.Session.send_frames = probed_send_frames
    sys.exit(main())
