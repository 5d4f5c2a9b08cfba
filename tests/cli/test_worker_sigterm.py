"""SIGTERM to a busy ``armguard worker``: a batch that has not written releases its lease (the
job is queued again, nothing is lost); a batch whose write ARM has finishes it first."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import SystemClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import JobState, Outcome
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.coordinator.submit import submit
from armguard.testing import EmulatorHandle, emulator

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
NET = "2024-05-01"
BODY = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    # Real time: the worker is another process. A VNet update lasts 3 s, long enough to signal
    # the worker mid-wait and short enough that finishing the batch is quick.
    settings = {"Microsoft.Network/virtualNetworks": {"durations": {"update": 3.0, "create": 0.0}}}
    with emulator(clock=SystemClock(), type_settings=settings) as handle:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=handle.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        assert setup.request("PUT", VNET, api_version=NET, body=BODY).ok
        yield handle


def _worker(store: Path, arm: EmulatorHandle) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "worker",
            "--store",
            str(store),
            "--endpoint",
            arm.base_url,
            "--linger",
            "0",
            "--output",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("worker ")  # signal handlers are in place
    return proc


def _until_event(store: SqliteStore, job_id: str, wanted: str, timeout: float = 30.0) -> None:
    """Watch the job's timeline (another process writes it) until ``wanted`` appears."""
    deadline = time.monotonic() + timeout
    while wanted not in [e.event for e in store.events(job_id)]:
        assert time.monotonic() < deadline, [e.event for e in store.events(job_id)]
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_before_the_write_releases_the_job(tmp_path: Path, arm: EmulatorHandle) -> None:
    pipeline = ArmClient(StaticIdentityCredential("pipeline"), endpoint=arm.base_url)
    live = pipeline.request("GET", VNET, api_version=NET).body
    assert pipeline.request("PUT", VNET, api_version=NET, body={**live, "tags": {"r": "1"}}).ok
    store = SqliteStore(str(tmp_path / "jobs.db"), clock=SystemClock())
    job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
    proc = _worker(tmp_path / "jobs.db", arm)
    _until_event(store, job.id, "waiting")  # gated on the pipeline's running update
    out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert json.loads(out)["released"] == 1
    after = store.get(job.id)
    assert after is not None
    assert after.state is JobState.QUEUED  # back in the queue for the next worker
    assert after.outcome is None
    assert "released" in [e.event for e in store.events(job.id)]
    assert "tags" not in (pipeline.request("GET", VNET, api_version=NET).body or {}) or (
        "a" not in pipeline.request("GET", VNET, api_version=NET).body["tags"]
    )


def test_sigterm_after_the_write_finishes_the_batch(tmp_path: Path, arm: EmulatorHandle) -> None:
    store = SqliteStore(str(tmp_path / "jobs.db"), clock=SystemClock())
    job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
    proc = _worker(tmp_path / "jobs.db", arm)
    _until_event(store, job.id, "write")  # ARM has it; its update runs for 3 s
    out, err = _stop(proc)
    assert proc.returncode == 0, err
    done = store.get(job.id)
    assert done is not None
    assert done.outcome is Outcome.APPLIED, done.reason
    assert json.loads(out)["outcomes"] == {"applied": 1}
    reader = ArmClient(StaticIdentityCredential("reader"), endpoint=arm.base_url)
    assert reader.request("GET", VNET, api_version=NET).body["tags"] == {"a": "1"}
