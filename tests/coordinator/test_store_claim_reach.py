"""How far a claim reads, on both stores: the jobs that share a key with its batch, not the
queue between its head and its last follower.

A claim used to read every queued job between the head and its last same-resource follower,
to check that no follower overtakes an older job it does not commute with: with 100k jobs
queued over 1k resources, 54k rows a claim. The store now keeps an index of each job's keys
other than its own resource (``job_keys``, schema 2) and reads only the jobs holding one of the
batch's keys, at most ``_CROSSED_LIMIT`` of them; a batch that would reach past the last one
read is cut there. These tests pin the three things that change: how much a claim reads
(SQLite's virtual-machine steps, PostgreSQL's buffers — counts, not timings), the cut, and the
upgrade of a store made by schema 1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from armguard.clock import ManualClock
from armguard.coordinator.model import JobResult, JobSpec, Lease, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import _CROSSED_LIMIT, SCHEMA_VERSION, SqlStore

if TYPE_CHECKING:
    from store_db import StoreDb

_RG = "/subscriptions/s/resourcegroups/rg/providers"
VNET = f"{_RG}/microsoft.network/virtualnetworks/vnet"


def subnet(n: int | str) -> str:
    return f"{VNET}/subnets/s{n}"


def vm(n: int) -> str:
    return f"{_RG}/microsoft.compute/virtualmachines/vm{n}"


def job(resource: str, *extra: str, n: int = 0) -> JobSpec:
    return JobSpec(
        resource_id=resource,
        intent={"tags": {"n": str(n)}},
        writer="w",
        lock_keys=(resource, *extra),
    )


def claim(store: SqlStore, max_batch: int = 64) -> Lease:
    lease = store.claim("w", 60, max_batch)
    assert lease is not None
    return lease


def done(store: SqlStore, lease: Lease) -> None:
    store.complete(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])


def claim_work(store: SqlStore, max_batch: int) -> tuple[Lease, int]:
    """Claim once; return the lease and how much the store worked for it — SQLite's
    virtual-machine instructions (progress-handler calls, one per instruction), PostgreSQL's
    shared buffers touched by this session's statements. Both count work, not time."""
    if isinstance(store, PostgresStore):
        before = _pg_buffers(store)
        lease = claim(store, max_batch)
        return lease, _pg_buffers(store) - before
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = store._conn()
    conn.set_progress_handler(step, 1)
    try:
        lease = claim(store, max_batch)
    finally:
        conn.set_progress_handler(None, 1)
    return lease, steps


def _pg_buffers(store: PostgresStore) -> int:
    # The store's own session: what its transactions read from its tables and their indexes.
    # A session publishes its counts when it goes idle, at most once a second unless told.
    with store._read() as tx:
        tx.rows("SELECT pg_stat_force_next_flush()")
        tx.rows("SELECT pg_stat_clear_snapshot()")
        found = tx.rows(
            "SELECT COALESCE(SUM(heap_blks_hit + heap_blks_read + COALESCE(idx_blks_hit, 0)"
            " + COALESCE(idx_blks_read, 0)), 0) FROM pg_statio_user_tables"
            " WHERE schemaname = current_schema()"
        )
    return int(found[0][0])


def test_a_claim_costs_the_same_however_many_jobs_lie_between_its_batch(
    db_factory: Callable[[], StoreDb],
) -> None:
    """Eight jobs a resource, queued round-robin over 20 or 500 resources: between a head and
    its last follower lie 133 jobs or 3,493 — and none of them can stop the batch, so the claim
    of the same eight jobs does the same work. (Measured, the claim that read every job in
    between did 30x the work at 500 on SQLite, 2.8x the buffers on PostgreSQL.)"""
    work = {}
    for resources in (20, 500):
        store = db_factory().open(ManualClock())
        store.submit_many([job(vm(i % resources), n=i // resources) for i in range(8 * resources)])
        done(store, claim(store, 8))  # plans and caches settle on the first claim
        lease, work[resources] = claim_work(store, 8)
        assert [(j.spec.resource_id, j.spec.intent["tags"]["n"]) for j in lease.jobs] == [
            (vm(1), str(n)) for n in range(8)
        ]
    assert work[20] > 0
    assert work[500] <= 1.5 * work[20], work


def test_a_follower_waits_for_an_older_job_on_a_key_it_locks(store: SqlStore) -> None:
    """Found through ``job_keys``: the VNet job in between holds no key of the subnet's own, but
    the subnet jobs lock the VNet."""
    store.submit_many(
        [
            job(subnet("a"), VNET, n=1),
            *[job(vm(i), n=i) for i in range(30)],
            job(VNET, n=2),
            job(subnet("a"), VNET, n=3),
        ]
    )
    lease = claim(store)
    assert [j.spec.intent["tags"]["n"] for j in lease.jobs] == ["1"]


def test_a_follower_waits_for_an_older_job_linked_to_it_by_a_learned_scope(
    db_factory: Callable[[], StoreDb],
) -> None:
    """The older job's lock on the follower's resource, or the follower's on the older job's
    resource, may come from a learned scope alone; either way the follower waits. A job linked
    only through a third key commutes and is passed."""
    a, b, y, z = vm(1), vm(2), f"{VNET}/y", f"{VNET}/z"
    cases = {
        # older job keys, learned (key, other) pairs, whether the follower waits
        "its other key depends on the follower's resource": ((b, y), [(y, a)], True),
        "its resource depends on the follower's": ((b,), [(a, b)], True),
        "both depend on a third key": ((b, y), [(y, z), (a, z)], False),
    }
    for name, (older_keys, learned, waits) in cases.items():
        store = db_factory().open(ManualClock())
        for key, other in learned:
            store.learn_scope(key, other, "test")
        store.submit_many(
            [
                job(a, n=1),
                *[job(vm(100 + i), n=100 + i) for i in range(5)],
                job(b, *older_keys[1:], n=2),
                job(a, n=3),
            ]
        )
        lease = claim(store)
        expected = ["1"] if waits else ["1", "3"]
        assert [j.spec.intent["tags"]["n"] for j in lease.jobs] == expected, name


def test_a_batch_is_cut_where_the_claim_stopped_looking(store: SqlStore) -> None:
    """Siblings that only share the VNet's key commute, so a subnet's later job may pass them —
    but only those the claim has read: past ``_CROSSED_LIMIT`` of them it stops and the rest of
    the batch waits for the next claim, still in submission order."""
    few, many = 10, _CROSSED_LIMIT + 5
    store.submit_many(
        [
            job(subnet("a"), VNET, n=1),
            *[job(subnet(f"x{i}"), VNET, n=100 + i) for i in range(few)],
            job(subnet("a"), VNET, n=2),
            *[job(subnet(f"y{i}"), VNET, n=1000 + i) for i in range(many)],
            job(subnet("a"), VNET, n=3),
        ]
    )
    first = claim(store)
    assert [j.spec.intent["tags"]["n"] for j in first.jobs] == ["1", "2"]
    done(store, first)
    order = []
    while (lease := store.claim("w", 60, 64)) is not None:
        order += [
            (j.spec.resource_id, j.spec.intent["tags"]["n"])
            for j in lease.jobs
            if j.spec.resource_id == subnet("a")
        ]
        done(store, lease)
    assert order == [(subnet("a"), "3")]
    assert store.queue_depth() == 0


def test_a_store_made_by_schema_1_is_upgraded_with_its_queued_jobs_indexed(
    db: StoreDb, clock: ManualClock
) -> None:
    store = db.open(clock)
    queued = store.submit_many(
        [
            job(subnet("a"), VNET, n=1),
            job(VNET, n=2),
            job(subnet("a"), VNET, n=3),
            job(vm(1), n=4),
        ]
    )
    store.close()
    _downgrade_to_schema_1(db)

    store = db.open(clock)
    assert _schema(db) == (SCHEMA_VERSION, [(VNET, queued[0].seq), (VNET, queued[2].seq)])
    # The VNet job in between is seen: the subnet's later job does not pass it.
    lease = claim(store)
    assert [j.spec.intent["tags"]["n"] for j in lease.jobs] == ["1"]
    # And jobs submitted after the upgrade are indexed as they come.
    later = store.submit(job(subnet("b"), VNET, n=5))
    assert (VNET, later.seq) in _schema(db)[1]


def _downgrade_to_schema_1(db: StoreDb) -> None:
    """What schema 1 had: everything but ``job_keys`` and what fills it."""
    if db.backend == "sqlite":
        conn = sqlite3.connect(db.location)
        with conn:
            conn.execute("DROP TRIGGER jobs_other_keys")
            conn.execute("DROP TABLE job_keys")
            conn.execute("UPDATE armguard_schema SET version = 1")
        conn.close()
        return
    with psycopg.connect(db.location, autocommit=True) as pg:
        pg.execute(f'SET search_path = "{db.schema}"')
        pg.execute("DROP TRIGGER jobs_other_keys ON jobs")
        pg.execute("DROP FUNCTION armguard_other_keys()")
        pg.execute("DROP TABLE job_keys")
        pg.execute("UPDATE armguard_schema SET version = 1")


def _schema(db: StoreDb) -> tuple[int, list[tuple[str, int]]]:
    query = ("SELECT version FROM armguard_schema", "SELECT key, seq FROM job_keys ORDER BY seq")
    rows: list[list[Any]]
    if db.backend == "sqlite":
        conn = sqlite3.connect(db.location)
        rows = [conn.execute(q).fetchall() for q in query]
        conn.close()
    else:
        with psycopg.connect(db.location, autocommit=True) as pg:
            pg.execute(f'SET search_path = "{db.schema}"')
            rows = [pg.execute(q).fetchall() for q in query]
    return int(rows[0][0][0]), [(str(k), int(s)) for k, s in rows[1]]
