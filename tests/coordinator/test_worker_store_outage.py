"""A worker outlives its store's outage: connections dropped under it (a failover, a restart,
an idle timeout) are reopened, and work submitted afterwards is done by the same worker."""

from __future__ import annotations

import threading

import psycopg
import pytest
from writer_env import VNET, Env, make_vnet

from armguard.coordinator.backoff import Backoff
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import Outcome
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.coordinator.write import BatchReport


def _drop_every_other_connection(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_worker_reconnects_after_its_connections_are_dropped(env: Env, backend: str) -> None:
    make_vnet(env)
    finished = threading.Event()

    def on_batch(report: BatchReport) -> None:
        finished.set()

    worker = Worker(
        lambda: env.db.open(env.clock),
        env.client,
        env.clock,
        settings=WorkerSettings(lease_ttl=3600.0, idle_poll=0.05),
        on_batch=on_batch,
        backoff=Backoff(),
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run_forever()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        first = env.submit(VNET, TagsIntent({"a": "1"}))
        assert finished.wait(60), "the first job was never run"
        finished.clear()
        assert env.job(first).outcome is Outcome.APPLIED
        assert _drop_every_other_connection(env.db.location) >= 2  # the loop's and watcher's
        second = env.db.open(env.clock)  # the test's own handle was dropped too
        job = submit(second, VNET, TagsIntent({"b": "2"}), "alice")
        assert finished.wait(60), f"the worker never ran the second job: {errors}"
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert not errors
    done = second.get(job.id)
    assert done is not None
    assert done.outcome is Outcome.APPLIED, done.reason
    assert worker.stats.store_reconnects >= 1
    assert env.get(VNET)["tags"] == {"a": "1", "b": "2"}
