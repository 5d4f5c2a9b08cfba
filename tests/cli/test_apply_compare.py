"""``armguard apply --compare``: the plan's writers without armguard, then with it, side by side;
the world's progress while it is built; a job table that fits 100 columns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The table's box-drawing characters: every line of the job table has one.
_TABLE_LINE = re.compile(r"[┃│┏┗┡└]")


def _apply(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "apply", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
        env=env,
    )


def test_compare_shows_what_the_naive_writers_hit_and_armguard_did_not() -> None:
    proc = _apply(
        "examples/incidents.yaml",
        "--emulator",
        "--compare",
        "--time-scale",
        "0.01",
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    compare = json.loads(proc.stdout)["compare"]
    naive, armguard = compare["naive"], compare["armguard"]
    assert naive["writers"] == armguard["writers"] == 12
    # The naive writers really ran: each read and wrote (a writer with a body sends no GET).
    assert naive["requests"] >= naive["writers"]
    assert naive["conflictsSurfaced"] + naive["updatesLost"] > 0
    assert len(naive["surfaced"]) == naive["conflictsSurfaced"]
    assert len(naive["lost"]) == naive["updatesLost"]
    # What they were handed is ARM's answer, never an invented one.
    assert all(s["status"] in (409, 412) or s["code"] for s in naive["surfaced"])
    assert armguard["conflictsSurfaced"] == 0
    assert armguard["updatesLost"] == 0
    assert "naive run:" in proc.stderr
    assert "writers were handed an error" in proc.stderr


def test_table_fits_100_columns_with_whole_names_and_the_world_reports_progress() -> None:
    proc = _apply(
        "examples/incidents.yaml", "--emulator", "--compare", "--time-scale", "0.01", columns=100
    )
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if _TABLE_LINE.search(line)]
    assert len(table) >= 12 + 4  # a row per job, header and borders
    assert all(len(line) <= 100 for line in table), "\n".join(table)
    body = "\n".join(table)
    assert "…" not in body
    for name in ("mediaeast", "nsg-app", "vnet-prod", "vnet-prod/data", "api-01", "api-02"):
        assert f" {name} " in body
    # The side-by-side summary, both runs.
    naive = re.search(r"naive: +(\d+) conflicts surfaced, (\d+) updates lost", proc.stdout)
    assert naive is not None, proc.stdout
    assert int(naive[1]) + int(naive[2]) > 0
    assert re.search(r"armguard: +0 conflicts surfaced, 0 updates lost", proc.stdout)
    # World building says what it is doing, step by step, for each emulator.
    steps = re.findall(r"^world \[(\d+)/8\] ", proc.stderr, re.MULTILINE)
    assert steps.count("1") == 2, proc.stderr
    assert steps.count("8") == 2, proc.stderr
    assert "world [4/8] creating vnet-prod" in proc.stderr


def test_details_adds_the_full_reason() -> None:
    proc = _apply("examples/incidents.yaml", "--emulator", "--time-scale", "0.01", "--details")
    assert proc.returncode == 0, proc.stderr
    assert "reason" in proc.stdout
    # Folded, never cut: the whole baseline ETag of the dropped message is there.
    assert "00000000beef" in proc.stdout.replace("\n", "").replace("│", "").replace(" ", "")


def test_compare_needs_the_emulator() -> None:
    proc = _apply("examples/incidents.yaml", "--compare")
    assert proc.returncode == 2
    assert "--compare needs --emulator" in proc.stderr
