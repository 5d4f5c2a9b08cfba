"""The HTML report rendered by a real headless Chromium: bars, conflict links, no scripts.

The screenshot is decoded with a small PNG reader (zlib + the five scanline filters) and the
pixels of the outcome colours are located, so the test proves the bars are drawn where the log
says: bob's long deallocate above alice's refused write, which sits inside bob's time span.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from armguard.arm.ids import ResourceId
from armguard.diagnose.report import OUTCOME_COLOURS, render_report
from armguard.diagnose.timeline import TimelineOptions, load_timeline

pytestmark = pytest.mark.chromium

DATA = Path(__file__).parent / "data"
RG = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/prod-rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/api-01"
CHROMIUM = "/usr/bin/chromium"


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required in CI: apt-get install -y chromium")
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    return path


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            *args,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk)
            assert (depth, interlace) == (8, 0)
            assert colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def _boxes(png: bytes, colour: str) -> list[tuple[int, int, int]]:
    """Horizontal runs (y, x_start, x_end) of exactly ``colour`` at least 3 pixels long."""
    width, _height, bpp, rows = read_png(png)
    target = bytes.fromhex(colour.lstrip("#"))
    runs = []
    for y, row in enumerate(rows):
        x = 0
        while x < width:
            if row[x * bpp : x * bpp + 3] == target:
                start = x
                while x < width and row[x * bpp : x * bpp + 3] == target:
                    x += 1
                if x - start >= 3:
                    runs.append((y, start, x - 1))
            else:
                x += 1
    return runs


def test_png_reader_decodes_every_filter() -> None:
    # A 3x5 RGB image, one row per filter type, built by hand.
    pixels = [bytes([10 * y + x, 20, 200 - x]) for y in range(5) for x in range(3)]
    rows = [b"".join(pixels[y * 3 : y * 3 + 3]) for y in range(5)]
    raw = b""
    prev = bytes(9)
    for ftype, row in enumerate(rows):
        enc = bytearray(row)
        for i in range(9):
            left = row[i - 3] if i >= 3 else 0
            up_left = prev[i - 3] if i >= 3 else 0
            pred = [0, left, prev[i], (left + prev[i]) >> 1, _paeth(left, prev[i], up_left)][ftype]
            enc[i] = (row[i] - pred) & 0xFF
        raw += bytes([ftype]) + bytes(enc)
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 5, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    assert read_png(png) == (3, 5, 3, rows)


def test_the_report_renders_bars_and_conflict_links_in_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    timeline = load_timeline(
        [str(DATA / "incident.json")], TimelineOptions(resource=ResourceId.parse(VM))
    )
    report = tmp_path / "report.html"
    report.write_text(render_report(timeline, generated_at=0.0), encoding="utf-8")
    shot = tmp_path / "shot.png"
    _run(chromium, tmp_path / "profile", f"--screenshot={shot}", report.as_uri())
    png = shot.read_bytes()

    green = _boxes(png, OUTCOME_COLOURS["succeeded"])
    red = _boxes(png, OUTCOME_COLOURS["conflict"])
    purple = _boxes(png, "#6a1b9a")
    assert green
    assert red
    assert purple
    # bob's deallocate: the widest green bar, most of the chart wide.
    bob_y, bob_x0, bob_x1 = max(green, key=lambda r: r[2] - r[1])
    assert bob_x1 - bob_x0 > 600
    # alice's refused write: red, one lane lower (40 of 1000 units: 50 px at 1240 px), inside bob's span.
    bar_rows = [r for r in red if 30 <= r[0] - bob_y <= 70 and bob_x0 < r[1] < bob_x1]
    assert bar_rows, (bob_y, bob_x0, bob_x1, red[:5])
    # The arrow between them (its stroke runs between the two lanes).
    assert any(bob_y <= y <= bar_rows[0][0] + 16 and bob_x0 < x0 < bob_x1 for y, x0, _ in purple)

    dom = _run(chromium, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout.decode()
    assert dom.count('class="op op-succeeded"') == 1
    assert dom.count('class="op op-conflict"') == 1
    (conflict,) = timeline.conflicts
    assert conflict.cause is not None
    assert f'data-conflict="{conflict.operation.id}" data-cause="{conflict.cause.id}"' in dom
    assert "<script" not in dom


def test_a_hostile_caller_name_stays_text_in_the_browser(tmp_path: Path) -> None:
    chromium = _chromium()
    timeline = load_timeline([str(DATA / "incident.json")])
    report = tmp_path / "report.html"
    report.write_text(render_report(timeline, generated_at=0.0), encoding="utf-8")
    source = report.read_text()
    assert "<script>" not in source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in source
    dom = _run(chromium, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout.decode()
    # Chromium re-serialises text nodes escaped: the name is text, never an element.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom
    # Self-contained: nothing to fetch (links are in-page anchors only).
    assert not re.search(
        r"""\b(src|href)=["']?(https?:|//)|url\(\s*["']?(https?:|//)|@import""", source
    )
    assert "default-src 'none'" in source
