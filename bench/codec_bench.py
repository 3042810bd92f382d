"""Codec micro-benchmark: prints one JSON line of frames/s figures.

Decoding feeds 64 KiB chunks (frames split across chunk boundaries, as recv
delivers them) of PUBLISH frames with a 64-byte payload over 100 topics, or of
PUBACKs, to a server-side Decoder, so the figures include buffering of partial
frames. publish_frame encodes the same publishes.

    .venv/bin/python bench/codec_bench.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from vmqpy.mqtt.codec import Decoder, encode, publish_frame
from vmqpy.mqtt.packets import Connect, Puback

PAYLOAD = bytes(range(64))
TOPICS = [f"bench/device-{i:04d}/temperature".encode() for i in range(100)]
CHUNK = 65536


def _publish(k: int, qos: int, version: int) -> bytes:
    frame, off = publish_frame(TOPICS[k % len(TOPICS)], PAYLOAD, qos, False, None, version)
    if qos:
        frame = frame[:off] + (k % 65535 + 1).to_bytes(2, "big") + frame[off + 2:]
    return frame


def _puback(k: int, qos: int, version: int) -> bytes:
    return encode(Puback(k % 65535 + 1), version)


def decode_rate(make: Callable[[int, int, int], bytes], qos: int, version: int, seconds: float) -> float:
    """Best frames/s decoding 100k frames from make(k, qos, version), fed in CHUNK-sized pieces."""
    frames = 100_000
    data = b"".join(make(k, qos, version) for k in range(frames))
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        dec = Decoder()
        dec.feed(encode(Connect("bench", proto_level=version), version))
        t0 = time.perf_counter()
        count = 0
        for chunk in chunks:
            count += len(dec.feed(chunk))
        best = max(best, count / (time.perf_counter() - t0))
        assert count == frames
    return best


def publish_frame_rate(qos: int, version: int, seconds: float) -> float:
    n = 100_000
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for k in range(n):
            publish_frame(TOPICS[k % 100], PAYLOAD, qos, False, None, version)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time spent per figure (best run wins)")
    s = ap.parse_args().seconds
    result = {}
    for version in (4, 5):
        for qos in (0, 1):
            result[f"decode_qos{qos}_v{version}_per_s"] = round(decode_rate(_publish, qos, version, s))
        result[f"decode_puback_v{version}_per_s"] = round(decode_rate(_puback, 1, version, s))
    for version in (4, 5):
        for qos in (0, 1):
            result[f"publish_frame_qos{qos}_v{version}_per_s"] = round(publish_frame_rate(qos, version, s))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
