"""PostgreSQL leases run on the database server's clock, so workers on machines whose clocks
disagree still agree on when a lease expires.

A worker "on a machine whose clock is off" is simulated by shifting ``time.time`` — the clock
``SystemClock`` reads — for the duration of that worker's store calls only. With leases on the
callers' clocks (armguard before server time), a clock an hour fast took over every live lease
and a clock an hour slow had its own leases taken over at once; a crashed worker with a fast
clock kept its jobs an hour. No test here sleeps: a lease that must expire gets a TTL of a
microsecond, shorter than any round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from armguard.clock import ManualClock, SystemClock
from armguard.coordinator.model import JobResult, JobSpec, JobState, LeaseLost, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.stores import open_store

pytestmark = pytest.mark.postgres

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
HOUR = 3600.0
INSTANT = 1e-6  # a TTL that has passed by the next statement


def _spec() -> JobSpec:
    return JobSpec(resource_id=VM, intent={"tags": {"a": "1"}}, writer="w", lock_keys=(VM.lower(),))


@contextmanager
def clock_off(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """This machine's clock is ``seconds`` off while the block runs."""
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() + seconds)
        yield


@pytest.fixture
def open_worker(
    pg_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[], PostgresStore]]:
    """Stores on one fresh schema, each as a worker process would open it: no clock given."""
    schema = f"t_time_{abs(hash(request.node.name)) % 10**12}"
    opened: list[PostgresStore] = []

    def open_one() -> PostgresStore:
        store = PostgresStore(pg_url, schema=schema)
        opened.append(store)
        return store

    yield open_one
    opened[0].drop_schema()
    for store in opened:
        store.close()


def _server_now(store: PostgresStore) -> float:
    with store._read() as tx:
        return float(tx.rows("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS FLOAT8)")[0][0])


def test_a_fast_clock_cannot_take_over_a_live_lease(
    open_worker: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, thief = open_worker(), open_worker()
    job = holder.submit(_spec())
    lease = holder.claim("holder", ttl=30)
    assert lease is not None
    with clock_off(monkeypatch, +HOUR):
        assert thief.claim("thief", ttl=30) is None, "a live lease was taken over"
    holder.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
    done = holder.get(job.id)
    assert done is not None
    assert (done.state, done.outcome, done.attempts) == (JobState.DONE, Outcome.APPLIED, 0)


def test_a_slow_clock_keeps_its_own_lease(
    open_worker: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder, other = open_worker(), open_worker()
    job = holder.submit(_spec())
    with clock_off(monkeypatch, -HOUR):
        lease = holder.claim("slow-holder", ttl=30)
    assert lease is not None
    assert other.claim("other", ttl=30) is None, "the slow machine's lease was taken over"
    with clock_off(monkeypatch, -HOUR):
        beat = holder.heartbeat(lease, 30)
        holder.complete(beat, [JobResult(job.id, Outcome.APPLIED)])
    assert holder.get(job.id).outcome is Outcome.APPLIED  # type: ignore[union-attr]


def test_an_expired_lease_is_expired_for_every_clock(
    open_worker: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker with a fast clock crashes holding a lease: the others take it over once its TTL
    has passed on the server, and the fast worker, were it to come back, could not complete."""
    fast, other = open_worker(), open_worker()
    job = fast.submit(_spec())
    with clock_off(monkeypatch, +HOUR):
        lease = fast.claim("fast", ttl=INSTANT)
    assert lease is not None
    taken = other.claim("other", ttl=30)
    assert taken is not None, "an expired lease was kept alive by its holder's fast clock"
    assert [(j.id, j.attempts) for j in taken.jobs] == [(job.id, 1)]
    assert taken.fence > lease.fence
    with clock_off(monkeypatch, +HOUR), pytest.raises(LeaseLost):
        fast.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
    other.complete(taken, [JobResult(job.id, Outcome.ALREADY_SATISFIED)])
    assert other.get(job.id).outcome is Outcome.ALREADY_SATISFIED  # type: ignore[union-attr]


def test_a_slow_clock_cannot_complete_an_expired_lease(
    open_worker: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = open_worker()
    job = holder.submit(_spec())
    lease = holder.claim("holder", ttl=INSTANT)
    assert lease is not None
    with clock_off(monkeypatch, -HOUR):
        with pytest.raises(LeaseLost, match="expired"):
            holder.heartbeat(lease, 30)
        with pytest.raises(LeaseLost, match="expired"):
            holder.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
        with pytest.raises(LeaseLost, match="expired"):
            holder.release(lease)
    assert holder.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]


def test_stored_times_are_the_servers(
    open_worker: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_worker()
    assert store.server_time
    with clock_off(monkeypatch, +HOUR):
        before = _server_now(store)
        job = store.submit(_spec())
        assert store.get(job.id) == job
        lease = store.claim("w", ttl=30)
        assert lease is not None
        store.learn_scope(VM, f"{VM}/extensions/agent", "AnotherOperationInProgress")
        after = _server_now(store)
    assert before <= job.created_at <= after
    assert before + 30 <= lease.expires_at <= after + 30
    assert before <= lease.jobs[0].updated_at <= after
    [claimed] = [e for e in store.events(job.id) if e.event == "claimed"]
    assert claimed.ts[:19] == time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(lease.jobs[0].updated_at)
    )
    [scope] = store.learned_scopes()
    assert before <= scope.first_seen <= after


def test_an_injected_clock_is_used_as_given(pg_url: str) -> None:
    """Tests (and anyone who must) drive the lease clock themselves; the plain system clock
    means real time, which for many machines is the server's."""
    manual = ManualClock()
    store = PostgresStore(pg_url, clock=manual, schema="t_time_injected")
    real = PostgresStore(pg_url, clock=SystemClock(), schema="t_time_injected")
    url_store = open_store(f"{pg_url}?schema=t_time_injected")
    try:
        assert not store.server_time
        assert real.server_time
        assert url_store.server_time  # type: ignore[attr-defined]
        job = store.submit(_spec())
        assert job.created_at == manual.now()
        lease = store.claim("w", ttl=30)
        assert lease is not None
        assert lease.expires_at == manual.now() + 30
        manual.advance(30)
        with pytest.raises(LeaseLost, match="expired"):
            store.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
    finally:
        store.drop_schema()
        for s in (store, real, url_store):
            s.close()


def test_the_fence_check_needs_the_schemas_guard_function(pg_url: str) -> None:
    """A schema made by an armguard without the guard function gets it when opened."""
    first = PostgresStore(pg_url, clock=ManualClock(), schema="t_time_upgrade")
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute('DROP FUNCTION "t_time_upgrade".armguard_fenced(boolean)')
        again = PostgresStore(pg_url, clock=ManualClock(), schema="t_time_upgrade")
        job = again.submit(_spec())
        lease = again.claim("w", ttl=30)
        assert lease is not None
        again.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
        assert again.get(job.id).outcome is Outcome.APPLIED  # type: ignore[union-attr]
        again.close()
    finally:
        first.drop_schema()
        first.close()
