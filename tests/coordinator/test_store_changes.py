"""Idle workers wait on ``watch_changes`` instead of polling the queue: it must report this
process's submits and completions, other processes' commits, and nothing else.

Each wait is bounded; a change that never arrives fails the test after its bound instead of
hanging it. Nothing sleeps: a wait returns as soon as its change is seen."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock, SystemClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import JobResult, JobSpec, JobState, Outcome
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.events import JobEvent
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

if TYPE_CHECKING:
    from store_db import StoreDb

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
BOUND_S = 20.0


def _spec(n: int = 0) -> JobSpec:
    return JobSpec(resource_id=VM, intent={"n": n}, writer="w", lock_keys=(VM.lower(),))


def _drain(watcher: SqlStore) -> None:
    while watcher.watch_changes(0) is not None:
        pass


def test_nothing_happening_is_no_change(db: StoreDb) -> None:
    watcher = db.open(ManualClock())
    _drain(watcher)
    started = time.monotonic()
    assert watcher.watch_changes(0.05) is None
    assert time.monotonic() - started >= 0.05


def test_a_submit_and_a_completion_in_this_process_are_told_apart(db: StoreDb) -> None:
    clock = ManualClock()
    watcher, writer = db.open(clock), db.open(clock)
    _drain(watcher)
    writer.submit(_spec())
    assert watcher.watch_changes(BOUND_S) == "submitted"
    lease = writer.claim("w", 30)
    assert lease is not None
    _drain(watcher)  # a claim frees nothing; whatever the backend reports for it, skip it
    writer.complete(lease, [JobResult(lease.jobs[0].id, Outcome.APPLIED)])
    assert watcher.watch_changes(BOUND_S) == "freed"
    assert watcher.watch_changes(0) is None


def test_a_waiting_watcher_wakes_on_a_submit_from_another_thread(db: StoreDb) -> None:
    clock = ManualClock()
    watcher, writer = db.open(clock), db.open(clock)
    _drain(watcher)
    seen: list[object] = []
    waiting = threading.Thread(target=lambda: seen.append(watcher.watch_changes(BOUND_S)))
    started = time.monotonic()
    waiting.start()
    writer.submit(_spec())
    waiting.join(BOUND_S + 5)
    assert seen == ["submitted"]
    assert time.monotonic() - started < BOUND_S / 2, "woken by the submit, not the timeout"


def test_another_process_committing_wakes_the_watcher(db: StoreDb) -> None:
    watcher = db.open(ManualClock())
    _drain(watcher)
    code = (
        "from armguard.coordinator.stores import open_store\n"
        "from armguard.coordinator.model import JobSpec\n"
        f"s = open_store({db.url()!r})\n"
        f"s.submit(JobSpec(resource_id={VM!r}, intent={{}}, writer='x',"
        f" lock_keys=({VM.lower()!r},)))\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    change = watcher.watch_changes(BOUND_S)
    # PostgreSQL's NOTIFY carries the kind; SQLite only sees that the file changed.
    assert change == ("submitted" if db.backend == "postgres" else "freed")


def test_an_idle_worker_is_woken_by_a_submit_not_by_its_poll(db: StoreDb) -> None:
    """With a poll far longer than the bound, only the change watch can start the job."""
    clock = SystemClock()
    with emulator(clock=clock) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "x"}).ok
        worker = Worker(
            lambda: db.open(clock),
            lambda who: ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url),
            clock,
            settings=WorkerSettings(concurrency=2, idle_poll=60.0),
        )
        runner = threading.Thread(target=worker.run_forever, daemon=True)
        runner.start()
        try:
            store = db.open(clock)
            job = submit(store, RG, TagsIntent({"owner": "alice"}), "alice")
            deadline = time.monotonic() + BOUND_S
            while (found := store.get(job.id)) is not None and found.state is not JobState.DONE:
                assert time.monotonic() < deadline, "the idle worker never picked the job up"
                store.watch_changes(0.5)
        finally:
            worker.stop()
            runner.join(30)
        assert found is not None
        assert found.outcome is Outcome.APPLIED
        tags = setup.request("GET", RG, api_version="2024-03-01").body["tags"]
        assert tags == {"owner": "alice"}


def test_event_appends_and_learned_scopes_are_no_change(db: StoreDb) -> None:
    """They free no key and queue no job, so they must not wake idle workers. (On SQLite they
    also queue on the process's write gate like every other write: a write that bypassed it
    was seen by the watcher as another process's commit, and went through SQLite's sleeping
    busy handler instead of the gate.)"""
    clock = ManualClock()
    watcher, writer = db.open(clock), db.open(clock)
    job = writer.submit(_spec())
    _drain(watcher)
    event = JobEvent(
        ts="2026-01-01T00:00:00.0000000Z", job_id=job.id, resource_id=VM, writer="w", event="read"
    )
    writer.append_events([event])
    assert watcher.watch_changes(0) is None
    writer.append_events([event] * 450)  # more rows than one statement carries
    assert watcher.watch_changes(0) is None
    writer.learn_scope(VM, f"{VM}/extensions/agent", "AnotherOperationInProgress")
    assert watcher.watch_changes(0) is None
    assert len(writer.events(job.id)) == 451


def test_a_completion_wins_over_a_submit_that_came_first(db: StoreDb) -> None:
    """Both since the last look: keys may be free, so the answer is 'freed' (an idle worker
    lingering on a submit would otherwise not look for free keys), and it is one answer, not
    one per commit."""
    clock = ManualClock()
    watcher, writer = db.open(clock), db.open(clock)
    writer.submit(_spec(1))
    lease = writer.claim("w", 30)
    assert lease is not None
    _drain(watcher)
    writer.submit(_spec(2))
    writer.complete(lease, [JobResult(lease.jobs[0].id, Outcome.APPLIED)])
    assert watcher.watch_changes(BOUND_S) == "freed"
    assert watcher.watch_changes(0) is None
