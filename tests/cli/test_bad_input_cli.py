"""Hostile input to ``armguard apply`` and ``armguard submit``: an unknown resource type and
documents nested thousands of levels deep end as one ``ERROR: …`` line and exit 2, with no
traceback and nothing queued."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from armguard.clock import SystemClock
from armguard.coordinator.sqlite_store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
UNKNOWN = f"{RG}/providers/Microsoft.Foo/bars/b1"
LIMIT_MESSAGE = "nested more than 64 levels deep"


def armguard(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250"},
    )


def _queued(db: Path) -> list[str]:
    """Every job in the store (an absent store file has none)."""
    if not db.exists():
        return []
    store = SqliteStore(str(db), clock=SystemClock())
    try:
        return [job.id for job in store.jobs()]
    finally:
        store.close()


def _assert_usage_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("ERROR: "), proc.stderr[-2000:]
    # One line: a shell user sees the whole error, not a wall of text.
    assert proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert message in proc.stderr, proc.stderr


def _run_plan(tmp_path: Path, text: str, suffix: str = ".yaml") -> subprocess.CompletedProcess[str]:
    plan = tmp_path / f"plan{suffix}"
    plan.write_text(text, encoding="utf-8")
    return armguard("apply", str(plan), "--emulator", "--store", str(tmp_path / "jobs.db"))


# -- unknown resource types ------------------------------------------------------------------

_UNKNOWN_PLANS = {
    "job": f"jobs:\n  - {{writer: w, resource: {UNKNOWN}, tags: {{a: '1'}}}}\n",
    "world resource": (
        f"world:\n  resources:\n    - {{id: {UNKNOWN}, body: {{location: eastus}}}}\n"
        f"jobs:\n  - {{writer: w, resource: {RG}, tags: {{a: '1'}}}}\n"
    ),
    "unguarded write": (
        f"world:\n  unguarded:\n    - {{writer: u, method: PUT, id: {UNKNOWN}, body: {{}}}}\n"
        f"jobs:\n  - {{writer: w, resource: {RG}, tags: {{a: '1'}}}}\n"
    ),
}


@pytest.mark.parametrize("where", sorted(_UNKNOWN_PLANS))
def test_apply_with_an_unknown_resource_type_is_a_usage_error(tmp_path: Path, where: str) -> None:
    proc = _run_plan(tmp_path, _UNKNOWN_PLANS[where])
    _assert_usage_error(proc, "'Microsoft.Foo/bars'")
    assert "api_version" in proc.stderr
    assert _queued(tmp_path / "jobs.db") == []


def test_apply_with_a_subscription_as_the_resource_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run_plan(tmp_path, f"jobs:\n  - {{writer: w, resource: {SUB}, tags: {{a: '1'}}}}\n")
    _assert_usage_error(proc, "jobs[0]")
    assert _queued(tmp_path / "jobs.db") == []


def test_apply_accounts_for_an_unknown_type_that_names_its_api_version(tmp_path: Path) -> None:
    # With an api-version the job is valid and runs; reading the final state back for the
    # accounting must use that api-version too.
    plan = (
        f"world:\n  resources:\n    - {{id: {RG}, body: {{location: eastus}}}}\n"
        f"jobs:\n  - {{writer: w, resource: {UNKNOWN}, api_version: '2024-01-01', "
        "tags: {a: '1'}}\n"
    )
    proc = _run_plan(tmp_path, plan)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1), proc.stderr[-3000:]


# -- documents nested too deeply --------------------------------------------------------------


def _deep_yaml_flow(depth: int, opener: str, closer: str) -> str:
    return (
        f"jobs:\n  - writer: w\n    resource: {VNET}\n"
        f"    merge:\n      properties: {opener * depth}{closer * depth}\n"
    )


def _deep_yaml_block(depth: int) -> str:
    lines = [f"jobs:\n  - writer: w\n    resource: {VNET}\n    merge:"]
    lines.extend(f"{'  ' * (n + 3)}k{n}:" for n in range(depth))
    return "\n".join(lines) + " 1\n"


def _deep_yaml_aliases(depth: int) -> str:
    # Each anchored list holds the previous one: shallow text, a structure `depth` deep.
    lines = ["chain:", "  - &a0 [1]"]
    lines.extend(f"  - &a{n} [*a{n - 1}]" for n in range(1, depth))
    lines.append(
        f"jobs:\n  - writer: w\n    resource: {VNET}\n    merge: {{properties: *a{depth - 1}}}"
    )
    return "\n".join(lines) + "\n"


def _deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


_DEEP_PLANS = {
    "yaml lists 5000 deep": (_deep_yaml_flow(5000, "[", "]"), ".yaml"),
    "yaml mappings 5000 deep": (_deep_yaml_flow(5000, "{a: ", "}"), ".yaml"),
    "yaml block mappings 200 deep": (_deep_yaml_block(200), ".yaml"),
    "yaml aliases 3000 deep": (_deep_yaml_aliases(3000), ".yaml"),
    "yaml list that holds itself": (
        f"jobs:\n  - writer: w\n    resource: {VNET}\n    merge: {{properties: &me [*me]}}\n",
        ".yaml",
    ),
    "json 5000 deep": (
        json.dumps({"jobs": [{"writer": "w", "resource": VNET, "merge": "HOLE"}]}).replace(
            '"HOLE"', _deep_json(5000)
        ),
        ".json",
    ),
    "json 500 deep": (
        json.dumps({"jobs": [{"writer": "w", "resource": VNET, "merge": "HOLE"}]}).replace(
            '"HOLE"', _deep_json(500)
        ),
        ".json",
    ),
}


@pytest.mark.parametrize("shape", list(_DEEP_PLANS))
def test_apply_with_a_deeply_nested_plan_is_a_usage_error(tmp_path: Path, shape: str) -> None:
    text, suffix = _DEEP_PLANS[shape]
    proc = _run_plan(tmp_path, text, suffix)
    _assert_usage_error(proc, LIMIT_MESSAGE)
    assert _queued(tmp_path / "jobs.db") == []


def _submit(db: Path, *intent: str) -> subprocess.CompletedProcess[str]:
    return armguard("submit", "--store", str(db), "--resource", VNET, "--writer", "w", *intent)


@pytest.mark.parametrize(
    ("flag", "depth"), [("--merge", 3000), ("--put", 3000), ("--merge", 500), ("--baseline", 3000)]
)
def test_submit_with_a_deeply_nested_document_is_a_usage_error(
    tmp_path: Path, flag: str, depth: int
) -> None:
    db = tmp_path / "jobs.db"
    SqliteStore(str(db), clock=SystemClock()).close()  # a store that exists, to look in after
    if flag == "--baseline":
        # The body the intent was built on, from a file: '{"etag": …, "a": <deep>}'.
        baseline = tmp_path / "baseline.json"
        baseline.write_text('{"etag": "W/\\"1\\"", "a": ' + _deep_json(depth) + "}")
        proc = _submit(db, "--tag", "a=1", "--baseline", str(baseline))
    else:
        proc = _submit(db, flag, _deep_json(depth))
    _assert_usage_error(proc, LIMIT_MESSAGE)
    assert flag in proc.stderr
    assert _queued(db) == []


def test_submit_refuses_65_levels_and_takes_64(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    SqliteStore(str(db), clock=SystemClock()).close()
    _assert_usage_error(_submit(db, "--merge", _deep_json(65)), LIMIT_MESSAGE)
    assert _queued(db) == []
    proc = _submit(db, "--merge", _deep_json(64))
    assert proc.returncode == 0, proc.stderr
    assert _queued(db) == [proc.stdout.strip()]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_emulator_config_nested_5000_deep_is_a_usage_error(tmp_path: Path, suffix: str) -> None:
    config = tmp_path / f"config{suffix}"
    config.write_text('{"types": ' + _deep_json(5000) + "}", encoding="utf-8")
    # A config it wrongly accepted would serve until the timeout kills it (and fails the test).
    proc = armguard("emulator", "--config", str(config), "--port", "0", timeout=60)
    _assert_usage_error(proc, "nested too deeply")
