"""Closing an SQLite store while another thread is inside a call on it: the call's connection
stays open until the call ends (closing it under a running statement crashed the process),
and every later call raises StoreError."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest

from armguard.clock import ManualClock
from armguard.coordinator.model import Job, JobSpec
from armguard.coordinator.sql_store import StoreError
from armguard.coordinator.sqlite_store import SqliteStore

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"


def _spec(name: str) -> JobSpec:
    rid = f"{VM}-{name}"
    return JobSpec(resource_id=rid, intent={"n": name}, writer=name, lock_keys=(rid.lower(),))


def test_close_during_a_submit_waits_for_it_and_later_calls_fail_cleanly() -> None:
    path = Path(tempfile.mkdtemp(prefix="armguard-close-")) / "q.db"
    clock = ManualClock()
    store = SqliteStore(path, clock=clock)
    other = SqliteStore(path, clock=clock)
    made: list[Job] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            made.append(store.submit(_spec("inflight")))
        except BaseException as exc:
            errors.append(exc)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the submit's BEGIN IMMEDIATE now waits inside SQLite
    thread = threading.Thread(target=submit)
    thread.start()
    deadline = time.monotonic() + 20
    while not store._submit_group.leading:
        assert time.monotonic() < deadline, "the submit never started its commit"
        time.sleep(0.001)
    time.sleep(0.05)  # let it reach sqlite3's busy wait
    store.close()  # must neither crash nor close the connection under the running statement
    blocker.execute("ROLLBACK")
    blocker.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not errors, errors
    assert other.get(made[0].id) == made[0]
    with pytest.raises(StoreError, match="closed"):
        store.submit(_spec("after"))
    with pytest.raises(StoreError, match="closed"):
        store.jobs()
    assert store._all == []  # the in-flight call's connection was closed when it ended
    other.close()
