"""The short seeded chaos run on both stores: every nemesis the store has, then the checker
over the record. About a minute per store; the long run is one command in
docs/reliability.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from armguard.chaos.nemesis import nemeses_for
from armguard.chaos.pg import PgCluster, PgUnavailable
from armguard.chaos.run import ChaosConfig, run_chaos
from armguard.cli.main import main

SHORT = {"intents": 300, "resources": 50, "workers": 3, "duration": 30.0, "nemesis_every": 3.0}


def _children() -> set[int]:
    """PIDs whose parent is this process: what a run must not leave behind."""
    me = str(os.getpid())
    out: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def _pg_or_skip() -> None:
    cluster = PgCluster()
    try:
        cluster.start()
    except PgUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL and none could be started: {exc}")
        pytest.skip(f"PostgreSQL chaos run skipped: {exc}")
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_short_seeded_run_keeps_the_promise(store: str, tmp_path: Path) -> None:
    if store == "postgres":
        _pg_or_skip()
    before = _children()
    report = run_chaos(ChaosConfig(store=store, seed=15, keep=tmp_path / "run", **SHORT))
    checks = report["checks"]
    assert checks["violations"] == []
    assert checks["ok"]
    # Storms included: a batch whose retry budget runs dry goes back to the queue instead of
    # handing its jobs back as conflicts.
    assert checks["conflicts_surfaced"] == 0
    assert checks["conflicts_by_kind"] == {}
    # The run did what it claims: every nemesis of the store struck, the load all landed in
    # the store and the queue drained.
    assert set(report["nemesis"]) == set(nemeses_for(store))
    assert checks["accepted"] == report["intents"] == SHORT["intents"]
    assert sum(checks["outcomes"].values()) == SHORT["intents"]
    assert checks["outcomes"]["applied"] > SHORT["intents"] // 2
    # The emulator's faults struck armguard's requests, and were absorbed.
    assert sum(report["emulatorFaultsApplied"].values()) > 0
    assert report["workerProcessesStarted"] > SHORT["workers"]  # a killed worker was replaced
    assert report["drainedAfterLastFaultSeconds"] is not None
    # Every process it started is gone.
    assert _children() - before == set()


def test_bad_input_is_a_usage_error_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chaos", "--intents", "0"]) == 2
    assert "--intents" in capsys.readouterr().err
    assert main(["chaos", "--nemesis", "kill9,meteor"]) == 2
    assert "meteor" in capsys.readouterr().err
    assert main(["chaos", "--time-scale", "0"]) == 2
    assert "--time-scale" in capsys.readouterr().err
