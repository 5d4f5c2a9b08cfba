"""PostgreSQL claims of a free head run side by side (``armguard_claim_head_v2`` holds the store
lock shared), and still keep the queue's order.

Each test stands in for a second writer with a raw connection holding exactly what such a
writer holds at the moment that matters: a head claim halfway through (the store lock shared,
its job locked), or a submit not yet committed. The store's claim then runs in a thread, and
the test looks at what its backend waits for in ``pg_stat_activity`` before letting the other
writer finish."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from armguard.clock import ManualClock
from armguard.coordinator.model import Completion, JobResult, JobSpec, Lease, Outcome
from armguard.coordinator.postgres_store import PostgresStore

pytestmark = pytest.mark.postgres

RG = "/subscriptions/s/resourceGroups/rg/providers"
ONE = f"{RG}/Microsoft.Compute/virtualMachines/one"
TWO = f"{RG}/Microsoft.Compute/virtualMachines/two"
WAIT = 20.0  # seconds before a test gives up on something that should happen at once


def _spec(rid: str, *others: str) -> JobSpec:
    return JobSpec(
        resource_id=rid,
        intent={"rid": rid},
        writer="w",
        lock_keys=(rid.lower(), *(o.lower() for o in others)),
    )


@pytest.fixture
def store(pg_url: str, request: pytest.FixtureRequest) -> Iterator[PostgresStore]:
    schema = f"t_side_{abs(hash(request.node.name)) % 10**8}"
    handle = PostgresStore(pg_url, clock=ManualClock(1_700_000_000.0), schema=schema)
    handle.drop_schema()
    handle.close()
    handle = PostgresStore(pg_url, clock=ManualClock(1_700_000_000.0), schema=schema)
    yield handle
    handle.drop_schema()
    handle.close()


@pytest.fixture
def other(pg_url: str, store: PostgresStore) -> Iterator[psycopg.Connection[Any]]:
    """The other writer: a connection in the store's schema, in a transaction of its own."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SELECT set_config('search_path', %s, false)", (store.schema,))
        conn.commit()
        yield conn


@contextmanager
def _in_background(
    call: Callable[[], Lease | None], other: psycopg.Connection[Any]
) -> Iterator[Future[Lease | None]]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            yield pool.submit(call)
        finally:
            # Whatever the test found, a claim still waiting for the other writer is let go
            # before the pool waits for it.
            other.rollback()


def _waits_on_a_lock(pg_url: str, pid: int, future: Future[Lease | None]) -> None:
    """Until the store's backend waits for a lock (not a fixed sleep: the claim gets there in
    a few milliseconds, or on a loaded machine later)."""
    deadline = time.monotonic() + WAIT
    with psycopg.connect(pg_url, autocommit=True) as watch:
        while time.monotonic() < deadline:
            assert not future.done(), f"the claim did not wait: {future.result()}"
            row = watch.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.005)
    pytest.fail("the claim never waited for the other writer")


def _halfway_through_a_head_claim(conn: psycopg.Connection[Any], store: PostgresStore) -> None:
    """What a head claim holds between taking its job and committing."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (store._lock_key,))
    taken = conn.execute(
        "SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1 FOR UPDATE"
    ).fetchall()
    assert len(taken) == 1


def test_a_second_head_claim_takes_the_next_free_job_without_waiting(
    store: PostgresStore, other: psycopg.Connection[Any]
) -> None:
    one, two = store.submit_many([_spec(ONE), _spec(TWO)])
    _halfway_through_a_head_claim(other, store)
    with _in_background(lambda: store.claim("w", ttl=30), other) as running:
        lease = running.result(timeout=WAIT)  # with a store-wide exclusive lock: waits
        assert lease is not None
        assert [j.id for j in lease.jobs] == [two.id]
        assert store.claims_in_server == 1
    other.rollback()
    # The job the other claim let go of is next, and nothing else is held.
    lease = store.claim("w", ttl=30)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [one.id]


def test_a_claim_never_passes_an_older_job_of_its_keys_that_another_claim_is_taking(
    pg_url: str, store: PostgresStore, other: psycopg.Connection[Any]
) -> None:
    # Job two also locks job one's resource (a dependent scope): it may not run before one.
    one, two = store.submit_many([_spec(ONE), _spec(TWO, ONE)])
    _halfway_through_a_head_claim(other, store)
    with _in_background(lambda: store.claim("w", ttl=30), other) as running:
        # Two is the first job no one is taking, but it shares a key with one: the claim
        # hands over to the rules, which wait for the other claim to end.
        _waits_on_a_lock(pg_url, store._conn.info.backend_pid, running)
        other.rollback()  # the other claim failed: one is queued again, and first
        lease = running.result(timeout=WAIT)
        assert lease is not None
        assert [j.id for j in lease.jobs] == [one.id]
    assert store.claims_in_server == 0
    job = store.get(two.id)
    assert job is not None
    assert job.state.value == "queued"


def test_two_claims_meeting_only_through_a_learned_scope_never_lease_one_key_twice(
    pg_url: str, store: PostgresStore, other: psycopg.Connection[Any]
) -> None:
    # Both VMs were seen to hold one network: each job's lease takes the network's key too,
    # but neither job names it, so the checks of the two claims do not see each other.
    net = f"{RG}/Microsoft.Network/virtualNetworks/net".lower()
    store.learn_scope(net, ONE.lower(), "AnotherOperationInProgress")
    store.learn_scope(net, TWO.lower(), "AnotherOperationInProgress")
    one, two = store.submit_many([_spec(ONE), _spec(TWO)])
    _halfway_through_a_head_claim(other, store)
    other.execute(
        "INSERT INTO leases (id, owner, fence, keys, expires_at, created_at)"
        " VALUES ('theirs', 'them', nextval('armguard_fence'), %s, 1e12, 0)",
        (f'["{ONE.lower()}", "{net}"]',),
    )
    other.execute(
        "INSERT INTO lease_keys (key, lease_id, fence) SELECT k, 'theirs', 0"
        " FROM unnest(%s::text[]) AS u(k)",
        ([ONE.lower(), net],),
    )
    other.execute("UPDATE jobs SET state = 'running', lease_id = 'theirs' WHERE id = %s", (one.id,))
    with _in_background(lambda: store.claim("w", ttl=30), other) as running:
        # The claim takes job two and waits on the network's key, which the other lease holds
        # uncommitted.
        _waits_on_a_lock(pg_url, store._conn.info.backend_pid, running)
        other.commit()
        # Once the other lease stands, the claim writes nothing and the rules find the network
        # taken: no lease, and no error for the worker.
        assert running.result(timeout=WAIT) is None
    assert store.claims_in_server == 0
    job = store.get(two.id)
    assert job is not None
    assert job.state.value == "queued"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        held = conn.execute(
            f'SELECT key, lease_id FROM "{store.schema}".lease_keys ORDER BY key'
        ).fetchall()
    assert held == sorted([(ONE.lower(), "theirs"), (net, "theirs")])


def test_a_claim_waits_for_an_older_submit_still_in_flight(
    pg_url: str, store: PostgresStore, other: psycopg.Connection[Any]
) -> None:
    template = store.submit(_spec(ONE))
    first = store.claim("w", ttl=30)
    assert first is not None
    store.complete(first, [JobResult(template.id, Outcome.APPLIED)])
    # Another writer's submit on the same resource draws its seq and has not committed yet
    # (any INSERT, an older armguard's too, passes the submit gate).
    other.execute(
        "INSERT INTO jobs (id, resource_key, spec, keys, barrier, state, created_at, updated_at)"
        " SELECT 'in-flight', resource_key, spec, keys, barrier, 'queued', created_at, updated_at"
        " FROM jobs WHERE id = %s",
        (template.id,),
    )
    later = store.submit(_spec(ONE))  # a younger job of the same key, committed first
    # One job a claim, so that the two are not leased together.
    with _in_background(lambda: store.claim("w", ttl=30, max_batch=1), other) as running:
        _waits_on_a_lock(pg_url, store._conn.info.backend_pid, running)
        other.commit()
        lease = running.result(timeout=WAIT)
        assert lease is not None
        # Without the gate the claim would have seen only the younger job, and run it first.
        assert [j.id for j in lease.jobs] == ["in-flight"]
    done = Completion(lease, [JobResult("in-flight", Outcome.APPLIED)])
    after = store.claim("w", ttl=30, max_batch=1, completing=done)
    assert after is not None
    assert [j.id for j in after.jobs] == [later.id]


def test_a_store_made_before_the_submit_gate_gets_it_when_opened(
    pg_url: str, store: PostgresStore
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP TRIGGER jobs_submit_gate ON "{store.schema}".jobs')
        again = PostgresStore(pg_url, clock=ManualClock(1_700_000_000.0), schema=store.schema)
        again.close()
        found = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_submit_gate'"
            " AND tgrelid = to_regclass(%s)",
            (f'"{store.schema}".jobs',),
        ).fetchone()
        assert found == (1,)
