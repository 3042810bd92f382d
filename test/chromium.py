"""Headless Chromium (Debian's `chromium`) for the status page tests: the DOM after the page's
scripts ran, and a screenshot whose pixels can be checked.

`--virtual-time-budget` lets the page's timers run that many milliseconds of virtual time (its
fetches of status.json are real), so several refreshes happen before the DOM or screenshot is taken.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

PHONE = (390, 844)  # CSS pixels of a common phone screen


def available() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(url: str, *flags: str, budget_ms: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium") as profile:
        return subprocess.run([available() or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                               f"--virtual-time-budget={budget_ms}", *flags, url],
                              capture_output=True, text=True, timeout=120, check=True)


def dom(url: str, budget_ms: int = 10_000) -> str:
    return _run(url, "--dump-dom", budget_ms=budget_ms).stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = PHONE, budget_ms: int = 10_000) -> Path:
    _run(url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", budget_ms=budget_ms)
    return path


def pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels row by row) of an 8-bit RGB or RGBA PNG, such as Chromium writes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, width = 8, b"", 0
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        chunk = data[i + 8:i + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), f"PNG of depth {depth}, colour type {colour}"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        i += 12 + length
    raw, stride, out, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if filt == 1:
                line[x] = (line[x] + a) & 0xFF
            elif filt == 2:
                line[x] = (line[x] + b) & 0xFF
            elif filt == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += [tuple(line[x:x + 3]) for x in range(0, stride, channels)]
        prev = line
    return width, height, out


def has_colour(rgb: list[tuple[int, int, int]], colour: tuple[int, int, int], at_least: int = 20,
               tolerance: int = 12) -> bool:
    """Whether at least `at_least` pixels are `colour` (give or take anti-aliasing)."""
    n = 0
    for p in rgb:
        if all(abs(p[k] - colour[k]) <= tolerance for k in range(3)):
            n += 1
            if n >= at_least:
                return True
    return False
