from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _apply(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "apply", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def test_incidents_plan_surfaces_no_conflict_and_loses_no_intent(tmp_path: Path) -> None:
    proc = _apply(
        "examples/incidents.yaml", "--emulator", "--output", "json", "--report", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    summary = doc["summary"]
    assert summary["conflictsSurfaced"] == 0
    assert summary["lostIntents"] == []
    outcomes = {(j["writer"], j["resource"], j["intent"]): j["outcome"] for j in doc["jobs"]}
    # The stale queue message that would undo the hotfix is dropped; the still-valid one lands.
    assert outcomes[("queue-worker", "nsg-app", "merge")] == "dropped_stale"
    assert outcomes[("queue-worker", "nsg-app", "tags")] == "applied"
    assert outcomes[("tag-normalizer", "mediaeast", "tags")] in ("applied", "already_satisfied")
    assert outcomes[("capacity-runbook", "api-01", "resize")] == "applied"
    assert summary["outcomes"].get("already_satisfied", 0) >= 1
    # The running VMs were deallocated and started again around the resize.
    assert summary["prerequisitesRun"] >= 4
    assert summary["avoided"]
    # The report directory holds what `armguard timeline` reads, and its rendering.
    assert (tmp_path / "events.jsonl").stat().st_size > 0
    activity = json.loads((tmp_path / "activity.json").read_text())
    callers = {e["caller"] for e in activity}
    assert {"portal-hotfix@contoso.com", "release-pipeline", "capacity-runbook"} <= callers
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_a_locked_scope_blocks_the_job_and_exits_1() -> None:
    proc = _apply("examples/locked-scope.yaml", "--emulator", "--output", "json")
    assert proc.returncode == 1, proc.stderr
    jobs = {j["resource"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert jobs["ledger"]["outcome"] == "blocked"
    assert jobs["ledger"]["kind"] == "locked"
    assert jobs["artifacts"]["outcome"] == "applied"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("jobs: [", "not valid YAML"),
        ("name: x\n", "no jobs"),
        ("jobs:\n  - {writer: w, resource: /bad, tags: {a: b}}\n", "jobs[0].resource"),
        (
            "jobs:\n  - {writer: w, resource: /subscriptions/s/resourceGroups/r, tags: {a: b}, "
            "delete: true}\n",
            "exactly one intent",
        ),
        (
            "jobs:\n  - {resource: /subscriptions/s/resourceGroups/r, tags: {a: b}}\n",
            "'writer'",
        ),
    ],
)
def test_bad_plans_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(content)
    proc = _apply(str(plan), "--emulator", timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_plan_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = _apply(str(tmp_path / "nope.yaml"), "--emulator", timeout=60)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
