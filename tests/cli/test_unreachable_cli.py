"""`worker --until-idle` and `apply` against an ARM endpoint that answers nothing: they say so
within seconds, end on their own after --arm-outage, and print no traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg1"


def dead_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def armguard(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "250"},
    )
    return proc, time.monotonic() - started


def test_worker_until_idle_against_a_dead_endpoint_ends_and_says_why(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    proc, _ = armguard(
        "submit", "--store", store, "--resource", NSG, "--writer", "w", "--tag", "a=1"
    )
    assert proc.returncode == 0, proc.stderr
    endpoint = dead_endpoint()
    proc, took = armguard(
        "worker",
        "--store",
        store,
        "--endpoint",
        endpoint,
        "--until-idle",
        "--arm-outage",
        "2",
        "--output",
        "json",
    )
    assert "Traceback" not in proc.stderr
    assert took < 30, proc.stderr
    assert f"WARNING: ARM at {endpoint} gives no answer" in proc.stderr
    assert json.loads(proc.stdout)["outcomes"] == {"failed": 1}
    proc, _ = armguard("jobs", "--store", store, "--output", "json")
    (job,) = json.loads(proc.stdout)
    assert (job["outcome"], job["kind"]) == ("failed", "transient")


def test_apply_against_a_dead_endpoint_ends_without_a_traceback(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        json.dumps({"name": "dead", "jobs": [{"writer": "w", "resource": NSG, "tags": {"a": "1"}}]})
    )
    proc, took = armguard(
        "apply",
        str(plan),
        "--endpoint",
        dead_endpoint(),
        "--store",
        str(tmp_path / "jobs.db"),
        "--arm-outage",
        "2",
    )
    assert "Traceback" not in proc.stderr
    assert took < 30, proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert "gives no answer" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("ERROR: ")
