"""What a new user ran into, through the installed command: a mistyped store path, a wrong
flag, a bare --help, a lock's reason cut short, a blocked job counted as nothing surfaced, many
loops printing at once, and a dead endpoint or store."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from armguard.cli.main import COMMANDS
from armguard.clock import SystemClock
from armguard.coordinator.intents import PutIntent
from armguard.coordinator.stores import open_store
from armguard.coordinator.submit import submit
from armguard.testing import EmulatorHandle, emulator

ROOT = Path(__file__).resolve().parents[2]
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg"
LOCKED_SCOPE = f"'{SUB}/resourcegroups/finance'"


def armguard(
    *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=cwd or ROOT,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
    )


def free_port() -> int:
    """A loopback port nobody listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert any(line.startswith("ERROR: ") for line in proc.stderr.splitlines()), proc.stderr


# -- 1. a store that is not there -------------------------------------------------------------

READERS = [["jobs"], ["events"], ["scopes"], ["wait", "some-job", "--timeout", "1"]]


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
@pytest.mark.parametrize("url", ["nothere.db", "sqlite:///nothere.db"])
def test_reading_commands_refuse_a_store_that_does_not_exist(
    tmp_path: Path, command: list[str], url: str
) -> None:
    proc = armguard(*command, "--store", url, cwd=tmp_path)
    assert_clean_error(proc, 2)
    assert proc.stderr.startswith(f"ERROR: no store at {url} ")
    assert not (tmp_path / "nothere.db").exists()


def test_submit_creates_the_store_and_jobs_then_reads_it(tmp_path: Path) -> None:
    proc = armguard(
        "submit", "--store", "new.db", "--resource", RG, "--writer", "w", "--tag", "a=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "new.db").exists()
    proc = armguard("jobs", "--store", "new.db", "--output", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 1


# -- 2. a wrong flag: the command's own usage ----------------------------------------------------


# What the commands that take a positional argument are given, so the flag is the only fault.
POSITIONAL = {"apply": ["plan.yaml"], "wait": ["JOB"], "inspect": [RG], "timeline": ["log.json"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_flag_prints_the_commands_usage(command: str) -> None:
    proc = armguard(command, *POSITIONAL.get(command, []), "--bogus")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"usage: armguard {command} "), proc.stderr
    assert f"armguard {command}: error: unrecognized arguments: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_wrong_flag_before_the_command_is_the_top_levels() -> None:
    proc = armguard("--bogus", "jobs")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: armguard [-h]"), proc.stderr
    assert "armguard: error: unrecognized arguments: --bogus" in proc.stderr


# -- 3. every command explains itself ------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_a_description_with_exit_codes(command: str) -> None:
    proc = armguard(command, "--help")
    assert proc.returncode == 0, proc.stderr
    # argparse prints: usage lines, a blank line, the description, a blank line, arguments.
    paragraphs = proc.stdout.split("\n\n")
    assert paragraphs[0].startswith(f"usage: armguard {command}")
    description = " ".join(paragraphs[1].split())
    assert not description.endswith(":"), f"{command} has no description: {paragraphs[1]!r}"
    assert len(description) > 120, description
    assert re.search(r"\bexit", description, re.IGNORECASE), description


# -- 4 and 5. a lock, whole in JSON, and counted as surfaced --------------------------------------


def test_a_blocked_job_is_surfaced_and_its_lock_error_is_whole_in_json(tmp_path: Path) -> None:
    store = str(tmp_path / "jobs.db")
    proc = armguard(
        "apply", "examples/locked-scope.yaml", "--emulator", "--store", store, "--output", "json"
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    surfaced = doc["summary"]["surfacedToWriters"]
    assert surfaced["total"] == 1
    assert surfaced["text"] == "1 (1 blocked by a lock — a person must decide)"
    assert doc["summary"]["conflictsSurfaced"] == 1
    ledger = next(j for j in doc["jobs"] if j["resource"] == "ledger")
    assert ledger["armError"]["code"] == "ScopeLocked"
    assert LOCKED_SCOPE in ledger["armError"]["message"]

    proc = armguard("jobs", "--store", store, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    (blocked,) = [j for j in json.loads(proc.stdout) if j["outcome"] == "blocked"]
    assert LOCKED_SCOPE in blocked["armError"]["message"]

    # The table clips the reason, at a space and visibly, and folds the scope's ID whole.
    proc = armguard("jobs", "--store", store, "--output", "table")
    assert proc.returncode == 0, proc.stderr
    reason = "".join(
        line.rstrip(" │").rsplit("│", 1)[-1].strip()
        for line in proc.stdout.splitlines()
        if line.startswith("│") and "applied" not in line
    )
    assert reason == f"a management lock on{LOCKED_SCOPE.strip(chr(39))}…", reason


def test_apply_tables_say_what_was_surfaced() -> None:
    proc = armguard("apply", "examples/locked-scope.yaml", "--emulator")
    assert proc.returncode == 1, proc.stderr
    assert "surfaced to writers: 1 (1 blocked by a lock — a person must decide)" in proc.stdout
    assert "lost intents: 0" in proc.stdout


# -- 6. many loops, one printing thread ---------------------------------------------------------


@pytest.fixture
def served() -> Iterator[EmulatorHandle]:
    with emulator(clock=SystemClock(), time_scale=0) as arm:
        yield arm


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "live-status"])
def test_worker_with_eight_loops_on_many_jobs_prints_from_one_thread(
    tmp_path: Path, served: EmulatorHandle, terminal: bool
) -> None:
    path = str(tmp_path / "jobs.db")
    store = open_store(path)
    try:
        for i in range(80):
            # Forty resource groups, two writers each: batches end on many loops at once.
            body = {"location": "westeurope", "tags": {"n": str(i)}}
            submit(store, f"{SUB}/resourceGroups/rg-{i % 40}", PutIntent(body), f"w{i % 2}")
    finally:
        store.close()
    proc = armguard(
        "worker", "--store", path, "--endpoint", served.base_url, "--until-idle",
        "--concurrency", "8", "--linger", "0", "--output", "json",
        # Rich draws its live status line when it believes it writes to a terminal.
        env={"FORCE_COLOR": "1"} if terminal else {"NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "partially initialized" not in proc.stderr
    assert "could not print progress" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["jobs"] == 80
    assert sum(summary["outcomes"].values()) == 80
    if not terminal:
        # On a terminal the status line says it, and is redrawn over.
        assert "running queued jobs until none is queued or running" in proc.stderr
        # One count line per batch, in order: the last one accounts for every job.
        counts = [line for line in proc.stderr.splitlines() if line.startswith("jobs: ")]
        assert counts, proc.stderr
        done = re.findall(r"(\d+)", counts[-1].split("·")[0])
        assert sum(map(int, done)) == 80, counts[-1]


# -- 7. a dead endpoint, a dead store ------------------------------------------------------------


def test_commands_against_a_dead_store_say_so_and_exit_1(tmp_path: Path) -> None:
    dead = f"postgresql://armguard@127.0.0.1:{free_port()}/armguard"
    endpoint = f"http://127.0.0.1:{free_port()}"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"jobs": [{"writer": "w", "resource": RG, "tags": {"a": "1"}}]}))
    runs = [
        ["jobs"],
        ["events"],
        ["scopes"],
        ["wait", "some-job", "--timeout", "1"],
        ["submit", "--resource", RG, "--writer", "w", "--tag", "a=1"],
        [
            "worker", "--endpoint", endpoint, "--until-idle",
            "--store-outage", "2", "--arm-outage", "2",
        ],
        ["apply", str(plan), "--endpoint", endpoint, "--arm-outage", "2"],
    ]  # fmt: skip
    for args in runs:
        proc = armguard(*args, "--store", dead, timeout=60)
        assert_clean_error(proc, 1)
        assert "cannot" in proc.stderr.splitlines()[-1] or "PostgreSQL" in proc.stderr, args


def test_commands_against_a_dead_endpoint_say_so(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = str(tmp_path / "jobs.db")
    proc = armguard(
        "submit", "--store", store, "--resource", RG, "--writer", "w", "--tag", "a=1",
        "--read-baseline", "--endpoint", endpoint,
    )  # fmt: skip
    assert_clean_error(proc, 1)
    assert "ARM gave no answer" in proc.stderr

    proc = armguard("submit", "--store", store, "--resource", RG, "--writer", "w", "--tag", "a=1")
    assert proc.returncode == 0, proc.stderr
    proc = armguard(
        "worker", "--store", store, "--endpoint", endpoint, "--until-idle", "--arm-outage", "2"
    )
    assert_clean_error(proc, 1)
    assert proc.stderr.splitlines()[-1].startswith(f"ERROR: ARM at {endpoint} gave no answer")

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"jobs": [{"writer": "w", "resource": RG, "tags": {"a": "1"}}]}))
    proc = armguard(
        "apply", str(plan), "--endpoint", endpoint, "--store", store, "--arm-outage", "2"
    )
    assert_clean_error(proc, 1)

    # inspect counts an endpoint that does not answer as bad input (docs/diagnostics.md).
    proc = armguard("inspect", RG, "--endpoint", endpoint)
    assert_clean_error(proc, 2)
    assert "cannot reach ARM" in proc.stderr
