"""The strategies benchmark, run small: it must keep telling the strategies apart correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.coordinator_strategies import main
from benchmarks.strategies.common import IntentOutcome
from benchmarks.strategies.scoring import lost_intents
from benchmarks.strategies.workloads import WorkIntent

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "coordinator_strategies.py"
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tag(writer: str, index: int, value: str) -> WorkIntent:
    return WorkIntent(writer, index, RID, "2024-05-01", "tag", writer, value)


def test_lost_counts_only_the_last_intent_per_field_and_silence_only_for_reported_success() -> None:
    a0, a1 = _tag("a", 0, "1"), _tag("a", 1, "2")
    b0 = _tag("b", 0, "1")
    c0 = _tag("c", 0, "1")
    outcomes = [
        IntentOutcome(a0, True),
        IntentOutcome(a1, True),  # the final state holds a=1: a1 is lost, a0 is superseded
        IntentOutcome(b0, False, 409, "AnotherOperationInProgress"),  # lost, but surfaced
        IntentOutcome(c0, True),  # present
    ]
    final = {RID.lower(): {"tags": {"a": "1", "c": "1"}}}
    lost, silent = lost_intents(outcomes, final)
    assert sorted(o.intent.key for o in lost) == ["a", "b"]
    assert [o.intent.key for o in silent] == ["a"]


def test_stale_queue_separates_wrong_fixes_from_armguard() -> None:
    done = _run(
        "--workloads",
        "stale-queue",
        "--strategies",
        "clairvoyant,naive,blind-retry,armguard",
        "--writers",
        "3",
        "--intents-per-writer",
        "2",
        "--time-scale",
        "0.01",
        "--blind-tries",
        "2",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["errors"] == []
    result = doc["results"]["stale-queue"]
    assert result["intents"] == 6
    naive, blind, mine = (result["strategies"][s] for s in ("naive", "blind-retry", "armguard"))

    # Naive PUTs of the stale body wipe the tag another writer set, and nobody is told.
    assert "stale#tag:advanced" in naive["lostFields"]
    assert naive["lostSilently"] >= 1

    # Resending the stale ETag can never succeed: every intent ends in a surfaced 412.
    assert blind["failedBy"] == {"412 PreconditionFailed": 6}
    assert blind["conflictsSurfaced"] == 6
    assert blind["armWriteRequests"] == 12  # 2 tries each, the same ETag both times

    # armguard rebases the queued intents on the live state: nothing lost, nothing surfaced.
    assert mine["succeeded"] == 6
    assert mine["lost"] == 0
    assert mine["conflictsSurfaced"] == 0
    assert mine["conflictsSeen"] == 0
    assert mine["armguard"]["jobEvents"].get("rebased", 0) >= 1
    assert 1 <= mine["armWriteRequests"] < 6
    # The ideal is run, not modelled: one folded write on the live state, nothing refused.
    clair = result["strategies"]["clairvoyant"]
    assert (clair["lost"], clair["conflictsSeen"], clair["armWriteRequests"]) == (0, 0, 1)
    assert result["idealSource"] == "clairvoyant run"
    assert mine["idealSeconds"] == clair["makespanSeconds"] > 0
    assert mine["makespanVsIdeal"] == round(mine["makespanSeconds"] / clair["makespanSeconds"], 2)
    assert doc["armguardTargets"]


@pytest.mark.parametrize(
    "args",
    [
        ["--writers", "0"],
        ["--workloads", "nope"],
        ["--writers", "60"],  # a tag per writer: more than ARM's 50 tags on one resource
        ["--time-scale", "0"],
    ],
)
def test_bad_flags_are_cli_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert err.startswith("ERROR: ")
    assert out == ""
