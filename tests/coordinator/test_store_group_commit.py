"""Group commit: submits that arrive while another submit commits are committed together, in
one transaction, on either backend; what each submitter sees is what a lone submit gives.

To make a group deterministic, another connection holds the store's write lock (as another
process's long transaction would): the first submits (one on SQLite, four on PostgreSQL, as
many as run at once) then wait inside their commits while the others queue behind them."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from store_db import StoreDb

from armguard.clock import ManualClock
from armguard.coordinator.model import Job, JobSpec
from armguard.coordinator.sql_store import SqlStore, StoreError

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"


def _spec(name: str, idem: str | None = None) -> JobSpec:
    rid = f"{VM}/{name}"
    return JobSpec(
        resource_id=rid,
        intent={"tags": {"who": name}},
        writer=name,
        lock_keys=(rid.lower(),),
        idempotency_key=idem,
    )


class _Holds:
    """Makes the commits of the submits that lead (one on SQLite, as many as run at once on
    PostgreSQL) wait until released, as another process's long transaction would: SQLite's
    write lock held by another connection; on PostgreSQL, a trigger that makes each job on a
    resource named ``lead…`` wait for an advisory lock this test holds, one per leader, so
    they can be let go one at a time."""

    def __init__(self, db: StoreDb, leaders: int) -> None:
        self.names = ["lead"] + [f"lead{n}" for n in range(1, leaders)]
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[Any] | None = None
        if db.backend == "sqlite":
            self._sqlite = sqlite3.connect(db.location, isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")
            return
        self._pg = psycopg.connect(db.location, autocommit=True)
        self._pg.execute(
            f'CREATE OR REPLACE FUNCTION "{db.schema}".hold() RETURNS trigger LANGUAGE plpgsql'
            " AS $$ BEGIN IF NEW.resource_key LIKE '%/lead%' THEN"
            " PERFORM pg_advisory_xact_lock(4242, hashtext(NEW.resource_key)); END IF;"
            " RETURN NEW; END $$"
        )
        self._pg.execute(
            f'CREATE OR REPLACE TRIGGER hold BEFORE INSERT ON "{db.schema}".jobs'
            f' FOR EACH ROW EXECUTE FUNCTION "{db.schema}".hold()'
        )
        for name in self.names:
            self._pg.execute("SELECT pg_advisory_lock(4242, hashtext(%s))", (_key(name),))

    def release(self, names: list[str]) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            for name in names:
                self._pg.execute("SELECT pg_advisory_unlock(4242, hashtext(%s))", (_key(name),))

    def close(self) -> None:
        self.release(self.names)
        if self._pg is not None:
            self._pg.close()


def _key(name: str) -> str:
    return f"{VM}/{name}".lower()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


class _Submitter:
    """One writer thread with its own store handle, submitting once."""

    def __init__(self, store: SqlStore, specs: list[JobSpec]) -> None:
        self.store = store
        self.specs = specs
        self.jobs: list[Job] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.jobs = self.store.submit_many(self.specs)
        except BaseException as exc:
            self.error = exc

    def result(self) -> list[Job]:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "a submit never returned"
        if self.error is not None:
            raise self.error
        return self.jobs


def _queue_behind_blocked_commits(
    db: StoreDb,
    clock: ManualClock,
    batches: list[list[JobSpec]],
    lead_idem: str | None = None,
    closed: int | None = None,
) -> tuple[SqlStore, list[_Submitter], list[_Submitter], int]:
    """As many submits as the store runs group commits at once wait inside their commits
    (``lead_idem``: the first one's idempotency key) while the ``batches`` queue behind them
    in the order given. Then the first leader is let go, which hands its lead to the oldest
    waiter, who commits every waiting submit; only when those are done are the other leaders
    let go. ``closed``: the index of a batch whose handle is closed before it submits (it
    must fail on its own, not join the queue). Returns a store handle, the leading and the queued submitters, and the group's
    commit count before any of them."""
    probe = db.open(clock)
    group = probe._submit_group
    # Opened first: opening a store writes too.
    handles = [db.open(clock) for _ in range(group.leaders + len(batches))]
    before = group.commits
    holds = _Holds(db, group.leaders)
    try:
        leaders = []
        for n, name in enumerate(holds.names, start=1):
            spec = _spec(name, idem=lead_idem if n == 1 else None)
            leaders.append(_Submitter(handles.pop(), [spec]))
            _until(lambda n=n: group.leading == n, f"{n} submits lead")
        waiting = []
        for n, specs in enumerate(batches):
            handle = handles.pop()
            if n == closed:
                handle.close()
                waiting.append(_Submitter(handle, specs))
                waiting[-1].thread.join(timeout=5)
                assert not waiting[-1].thread.is_alive(), "a closed handle's submit waited"
                continue
            waiting.append(_Submitter(handle, specs))
            queued = n + 1 - (closed is not None and closed < n)
            _until(lambda q=queued: group.waiting() == q, f"{queued} submits wait")
        holds.release(holds.names[:1])
        for submitter in waiting:
            submitter.thread.join(timeout=30)
    finally:
        holds.close()
    for submitter in leaders:
        submitter.thread.join(timeout=30)
    return probe, leaders, waiting, before


def test_submits_that_arrive_during_a_commit_share_the_next_one(
    db: StoreDb, clock: ManualClock
) -> None:
    batches = [[_spec(f"w{n}-{i}") for i in range(3)] for n in range(12)]
    probe, leaders, waiting, before = _queue_behind_blocked_commits(db, clock, batches)
    led = [s.result() for s in leaders]
    results = [s.result() for s in waiting]
    queued = probe.jobs()
    assert len(queued) == len(leaders) + len(waiting) * 3
    assert {j.id for j in queued} == {j.id for batch in led + results for j in batch}
    # The blocked commits, and one for every submit that waited, in the order they came.
    assert probe._submit_group.commits - before == len(leaders) + 1
    waited = [j.id for batch in results for j in batch]
    assert [j.id for j in queued if j.id in set(waited)] == waited
    for specs, jobs in zip(batches, results, strict=True):
        assert [j.spec.resource_id for j in jobs] == [s.resource_id for s in specs]
        # Each caller's jobs are queued in the order it gave them, nobody else's between.
        seqs = [j.seq for j in jobs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        for job in jobs:
            assert probe.get(job.id) == job


def test_an_idempotency_key_holds_across_the_members_of_a_group(
    db: StoreDb, clock: ManualClock
) -> None:
    batches = [
        [_spec("a", idem="shared")],
        [_spec("b", idem="shared")],  # the same key in the same group
        [_spec("c", idem="lead-key")],  # the key a blocked commit is writing
    ]
    probe, leaders, waiting, _ = _queue_behind_blocked_commits(
        db, clock, batches, lead_idem="lead-key"
    )
    (lead,) = leaders[0].result()
    (a,), (b,), (c,) = (s.result() for s in waiting)
    assert b.id == a.id
    assert b.spec.resource_id.endswith("/a")
    assert c.id == lead.id
    assert c.spec.resource_id.endswith("/lead")
    ids = [j.id for j in probe.jobs()]
    assert len(ids) == len(leaders) + 1
    assert lead.id in ids
    assert a.id in ids


def _poison(db: StoreDb) -> None:
    """The database refuses any job on a resource named 'poison' (as a full disk or a broken
    connection would refuse a whole transaction)."""
    if db.backend == "sqlite":
        with sqlite3.connect(db.location) as conn:
            conn.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.resource_key LIKE"
                " '%/poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )
        return
    with psycopg.connect(db.location) as pg:
        pg.execute(
            f'CREATE FUNCTION "{db.schema}".poison() RETURNS trigger LANGUAGE plpgsql AS $$'
            " BEGIN IF NEW.resource_key LIKE '%/poison' THEN"
            " RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$"
        )
        pg.execute(
            f'CREATE TRIGGER poison BEFORE INSERT ON "{db.schema}".jobs'
            f' FOR EACH ROW EXECUTE FUNCTION "{db.schema}".poison()'
        )


def test_a_failed_group_commit_queues_none_of_its_members_and_each_of_them_raises(
    db: StoreDb, clock: ManualClock
) -> None:
    db.open(clock)  # creates the schema
    _poison(db)
    probe, leaders, (poisoned, innocent), _ = _queue_behind_blocked_commits(
        db, clock, [[_spec("poison")], [_spec("innocent")]]
    )
    for leader in leaders:
        assert len(leader.result()) == 1
    with pytest.raises(Exception, match="poisoned row"):
        poisoned.result()
    # The member whose thread did not run the commit gets a store error with its reason.
    with pytest.raises(StoreError, match="poisoned row"):
        innocent.result()
    names = {j.spec.resource_id.rsplit("/", 1)[1] for j in probe.jobs()}
    assert "poison" not in names
    assert "innocent" not in names
    assert "lead" in names
    # The group is free again: the next submit commits on its own.
    assert probe.submit(_spec("after")).seq > 0
    assert probe.queue_depth() == len(leaders) + 1


def test_a_lone_submit_commits_at_once_and_many_threads_lose_nothing(
    db: StoreDb, clock: ManualClock
) -> None:
    probe = db.open(clock)
    group = probe._submit_group
    before = group.commits
    probe.submit(_spec("alone"))
    assert group.commits - before == 1
    assert group.leading == 0
    stores = [db.open(clock) for _ in range(12)]
    start = threading.Barrier(len(stores))
    made: list[list[str]] = [[] for _ in stores]

    def writer(n: int) -> None:
        start.wait()
        for i in range(25):
            made[n].append(stores[n].submit(_spec(f"t{n}-{i}")).id)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    queued = {j.id: j for j in probe.jobs(limit=10_000)}
    assert len(queued) == 1 + 12 * 25
    for n, ids in enumerate(made):
        # A writer's jobs are queued in its order, each with its own spec.
        assert [queued[i].seq for i in ids] == sorted(queued[i].seq for i in ids)
        assert [queued[i].spec.writer for i in ids] == [f"t{n}-{i}" for i in range(25)]


def test_a_closed_handle_fails_its_own_submit_and_never_leads_a_group(
    db: StoreDb, clock: ManualClock
) -> None:
    # Were the closed handle to queue, it would be the oldest waiter and commit for the group:
    # its "closed" would then be the other waiter's error too.
    probe, _, (gone, kept), _ = _queue_behind_blocked_commits(
        db, clock, [[_spec("gone")], [_spec("kept")]], closed=0
    )
    with pytest.raises(StoreError, match="closed"):
        gone.result()
    (job,) = kept.result()
    assert probe.get(job.id) == job
    assert "gone" not in {j.spec.resource_id.rsplit("/", 1)[1] for j in probe.jobs()}
