"""The HTML report rendered by a real headless Chromium: bars, conflict links, no scripts.

The screenshot is decoded with a small PNG reader (zlib + the five scanline filters) and the
pixels of the outcome colours are located, so the test proves the bars are drawn where the log
says: bob's long deallocate above alice's refused write, which sits inside bob's time span.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from armguard.arm.ids import ResourceId
from armguard.diagnose.report import MARK_COLOURS, OUTCOME_COLOURS, render_report
from armguard.diagnose.timeline import TimelineOptions, load_timeline

pytestmark = pytest.mark.chromium

DATA = Path(__file__).parent / "data"
DEMO = [str(DATA / "incidents-activity.json"), str(DATA / "incidents-events.jsonl")]
"""``armguard apply examples/incidents.yaml --emulator --report``'s Activity Log and events."""
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


def _run(
    chromium: str, profile: Path, *args: str, size: str = "1400,1000"
) -> subprocess.CompletedProcess[bytes]:
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
            f"--window-size={size}",
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


def _colours(png: bytes) -> set[bytes]:
    width, _height, bpp, rows = read_png(png)
    return {row[x * bpp : x * bpp + 3] for row in rows[::3] for x in range(0, width, 3)}


@pytest.mark.parametrize("width", [900, 1400])
def test_the_story_of_the_demo_is_drawn_whole_at_900_and_1400_px(
    tmp_path: Path, width: int
) -> None:
    chromium = _chromium()
    report = tmp_path / "report.html"
    report.write_text(render_report(load_timeline(DEMO), generated_at=0.0), encoding="utf-8")
    shot = tmp_path / "shot.png"
    _run(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        report.as_uri(),
        size=f"{width},2400",
    )
    png = shot.read_bytes()
    assert read_png(png)[0] == width
    assert len(_colours(png)) > 40, "the screenshot is blank or nearly so"
    green = _boxes(png, OUTCOME_COLOURS["succeeded"])
    # Bars are drawn inside the page, out to the right of the shared axis (team-jobs' subnet
    # write ends the run), none cut off by the window's edge.
    assert green
    assert max(x1 for _y, _x0, x1 in green) > width * 0.6
    assert max(x1 for _y, _x0, x1 in green) < width - 16
    # Every kind of step the demo has is visible as its badge: rebase, drop, prerequisites,
    # coalesced write, already satisfied (a storm's requeue is in test_story_requeued).
    for event, colour in MARK_COLOURS.items():
        if event == "requeued":
            continue
        assert _boxes(png, colour), f"no {event} mark on the screenshot"


_MEASURE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="report.html" style="border:0;width:WIDTHpx;height:3000px"></iframe>
<pre id="out">pending</pre>
<script>
document.getElementById("f").addEventListener("load", () => {
  const d = document.getElementById("f").contentDocument;
  const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  document.getElementById("out").textContent = JSON.stringify({
    scrollWidth: d.documentElement.scrollWidth,
    clientWidth: d.documentElement.clientWidth,
    svgs: [...d.querySelectorAll("svg.timeline")].map((s) => ({
      box: r(s),
      ticks: [...s.querySelectorAll("text.tick")].map((t) => [t.dataset.ts, ...r(t)]),
      bars: [...s.querySelectorAll("g.op rect")].map(r),
      badges: [...s.querySelectorAll("g.mark rect")].map((b) => [b.parentNode.dataset.writer, ...r(b)]),
    })),
    headings: [...d.querySelectorAll("h3")].map(r),
    lines: parseFloat(getComputedStyle(d.querySelector("h3")).fontSize),
    idcells: [...d.querySelectorAll("td.id span")].map((s) => s.getClientRects().length),
  });
});
</script></body></html>
"""
"""A page of its own measures the report's layout: the report forbids scripts (its CSP), so
the script runs in a parent page and reads the report in a same-directory iframe."""


@pytest.mark.parametrize("width", [900, 1400])
def test_the_layout_holds_from_900_px(tmp_path: Path, width: int) -> None:
    chromium = _chromium()
    (tmp_path / "report.html").write_text(
        render_report(load_timeline(DEMO), generated_at=0.0), encoding="utf-8"
    )
    harness = tmp_path / "measure.html"
    harness.write_text(_MEASURE.replace("WIDTH", str(width)), encoding="utf-8")
    dom = _run(
        chromium,
        tmp_path / "profile",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        harness.as_uri(),
        size=f"{width + 40},1000",
    ).stdout.decode()
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[-2000:]
    assert found.group(1) != "pending", "the measuring script did not run"
    m = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    # Nothing scrolls sideways: the charts scale to the page.
    assert m["scrollWidth"] <= m["clientWidth"]
    assert len(m["svgs"]) == 7
    axis: dict[str, float] = {}
    for svg in m["svgs"]:
        left, _top, right, _bottom = svg["box"]
        assert right <= m["clientWidth"]
        ticks = svg["ticks"]
        assert len(ticks) >= 3
        for ts, t_left, _t_top, t_right, _t_bottom in ticks:
            # Whole labels inside the chart, and the same moment at the same x on every chart.
            assert left - 0.5 <= t_left, (ts, t_left, left)
            assert t_right <= right + 0.5, (ts, t_right, right)
            assert abs(axis.setdefault(ts, t_left) - t_left) < 0.5
        for one, two in itertools.pairwise(ticks):
            assert one[3] + 4 <= two[1], f"tick labels {one[0]} and {two[0]} overlap"
        for b_left, _b_top, b_right, _b_bottom in svg["bars"]:
            assert left <= b_left
            assert b_right <= right + 0.5
            assert b_right - b_left >= 2, "a bar too thin to see"
        badges = sorted(svg["badges"])
        for one, two in itertools.pairwise(badges):
            if one[0] == two[0]:
                assert one[3] <= two[1] + 0.5, f"badges of {one[0]} overlap"
    # Headings and resource cells keep to one line: names, with the whole ID on hover.
    for _left, top, _right, bottom in m["headings"]:
        assert bottom - top < 2 * m["lines"] + 8
    assert m["idcells"]
    assert set(m["idcells"]) == {1}
