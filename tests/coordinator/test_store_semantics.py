"""The store contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from armguard.clock import ManualClock, isoformat
from armguard.coordinator.model import (
    Completion,
    JobResult,
    JobSpec,
    JobState,
    Lease,
    LeaseLost,
    Outcome,
    StalePolicy,
)
from armguard.coordinator.sql_store import SqlStore, StoreError
from armguard.coordinator.stores import open_store, redact
from armguard.events import EventType, JobEvent

if TYPE_CHECKING:
    from store_db import StoreDb

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod-rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/VNet1"
SUBNET = f"{VNET}/subnets/App"
NIC = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic1"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"


def spec(
    resource: str,
    *extra_keys: str,
    barrier: bool = False,
    idem: str | None = None,
    intent: dict[str, object] | None = None,
    writer: str = "writer-a",
) -> JobSpec:
    return JobSpec(
        resource_id=resource,
        intent=intent if intent is not None else {"tags": {"n": resource[-4:]}},
        writer=writer,
        lock_keys=(resource.lower(), *(k.lower() for k in extra_keys)),
        barrier=barrier,
        idempotency_key=idem,
    )


def applied(lease: Lease, **facts: object) -> list[JobResult]:
    return [JobResult(job.id, Outcome.APPLIED, result=dict(facts)) for job in lease.jobs]


def claim(store: SqlStore, owner: str = "w1", ttl: float = 30.0, max_batch: int = 64) -> Lease:
    lease = store.claim(owner, ttl, max_batch)
    assert lease is not None, "expected a claimable job"
    return lease


def test_submit_claim_complete(store: SqlStore, clock: ManualClock) -> None:
    job = store.submit(spec(VM, intent={"size": "Standard_D2s_v5"}))
    assert job.state is JobState.QUEUED
    assert store.get(job.id) == job
    assert store.queue_depth() == 1

    clock.advance(1)
    lease = claim(store, "worker-1", ttl=30)
    assert [j.id for j in lease.jobs] == [job.id]
    assert lease.jobs[0].state is JobState.RUNNING
    assert lease.keys == (VM.lower(),)
    assert lease.owner == "worker-1"
    assert lease.expires_at == clock.now() + 30
    assert store.queue_depth() == 0
    assert store.claim("worker-2", 30) is None

    store.complete(lease, applied(lease, etag='W/"2"'))
    done = store.get(job.id)
    assert done is not None
    assert done.state is JobState.DONE
    assert done.outcome is Outcome.APPLIED
    assert done.result == {"etag": 'W/"2"'}
    assert done.spec == job.spec
    assert done.created_at == job.created_at < done.updated_at
    # the key is free again
    nxt = store.submit(spec(VM))
    assert [j.id for j in claim(store).jobs] == [nxt.id]


def test_failed_outcome_keeps_kind_and_reason(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    store.complete(lease, [JobResult(job.id, Outcome.BLOCKED, "locked", "ScopeLocked by rg-lock")])
    done = store.get(job.id)
    assert done is not None
    assert (done.outcome, done.kind, done.reason) == (
        Outcome.BLOCKED,
        "locked",
        "ScopeLocked by rg-lock",
    )


def test_nothing_to_claim(store: SqlStore) -> None:
    assert store.claim("w", 30) is None
    assert store.jobs() == []
    assert store.get("no-such-job") is None


def test_multi_key_claim_is_all_or_nothing(store: SqlStore) -> None:
    x = store.submit(spec(NIC))
    lease_x = claim(store)
    both = store.submit(spec(VM, NIC))  # needs the VM and the NIC
    assert store.claim("w2", 30) is None, "half of its keys are held: it must not start"

    store.complete(lease_x, applied(lease_x))
    lease_both = claim(store, "w2")
    assert [j.id for j in lease_both.jobs] == [both.id]
    assert set(lease_both.keys) == {VM.lower(), NIC.lower()}
    assert store.get(x.id).outcome is Outcome.APPLIED  # type: ignore[union-attr]

    vm_only = store.submit(spec(VM))
    nic_only = store.submit(spec(NIC))
    assert store.claim("w3", 30) is None, "both keys are held by one lease"
    store.complete(lease_both, applied(lease_both))
    assert [j.id for j in claim(store).jobs] == [vm_only.id]
    assert [j.id for j in claim(store).jobs] == [nic_only.id]


def test_per_key_fifo_no_overtaking(store: SqlStore) -> None:
    hold_nic = store.submit(spec(NIC))
    lease_nic = claim(store)
    older = store.submit(spec(VM, NIC))  # waits for the NIC
    # another resource whose keys are free except the VM, which an older queued job wants
    younger = store.submit(spec(f"{VM}/extensions/agent", VM))
    other = store.submit(spec(VNET))  # unrelated: must not be held up
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [other.id]
    assert store.claim("w", 30) is None

    store.complete(lease_nic, applied(lease_nic))
    first = claim(store)
    assert [j.id for j in first.jobs] == [older.id]
    assert store.claim("w", 30) is None
    store.complete(first, applied(first))
    assert [j.id for j in claim(store).jobs] == [younger.id]
    assert hold_nic.seq < older.seq < younger.seq < other.seq


def test_subnet_write_waits_for_vnet_write(store: SqlStore) -> None:
    vnet_job = store.submit(spec(VNET))
    subnet_job = store.submit(spec(SUBNET, VNET))
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [vnet_job.id]
    assert store.claim("w2", 30) is None
    store.complete(lease, applied(lease))
    lease2 = claim(store, "w2")
    assert [j.id for j in lease2.jobs] == [subnet_job.id]
    assert set(lease2.keys) == {SUBNET.lower(), VNET.lower()}
    # and the other way round: a VNet write waits for the subnet write
    vnet_again = store.submit(spec(VNET))
    assert store.claim("w3", 30) is None
    store.complete(lease2, applied(lease2))
    assert [j.id for j in claim(store, "w3").jobs] == [vnet_again.id]


def test_coalesces_same_resource_in_order_any_casing(store: SqlStore) -> None:
    a = store.submit(spec(VM))
    b = store.submit(spec(VM.upper()))
    store.submit(spec(NIC))
    c = store.submit(spec(VM.replace("vm1", "VM1")))
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [a.id, b.id, c.id]
    assert [j.seq for j in lease.jobs] == sorted(j.seq for j in lease.jobs)


def test_coalescing_respects_max_batch(store: SqlStore) -> None:
    ids = [store.submit(spec(VM)).id for _ in range(5)]
    first = claim(store, max_batch=2)
    assert [j.id for j in first.jobs] == ids[:2]
    store.complete(first, applied(first))
    second = claim(store, max_batch=64)
    assert [j.id for j in second.jobs] == ids[2:]


def test_barrier_runs_alone_and_in_order(store: SqlStore) -> None:
    a1 = store.submit(spec(VM))
    a2 = store.submit(spec(VM))
    stop = store.submit(spec(VM, barrier=True))
    a4 = store.submit(spec(VM))
    batches = []
    while (lease := store.claim("w", 30)) is not None:
        batches.append([j.id for j in lease.jobs])
        store.complete(lease, applied(lease))
    assert batches == [[a1.id, a2.id], [stop.id], [a4.id]]


def test_barrier_at_head_is_claimed_alone(store: SqlStore) -> None:
    delete = store.submit(spec(VM, barrier=True))
    store.submit(spec(VM))
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [delete.id]


def _drain(store: SqlStore) -> list[list[str]]:
    order = []
    while (lease := store.claim("w", 30)) is not None:
        order.append([j.id for j in lease.jobs])
        store.complete(lease, applied(lease))
    return order


def test_coalescing_never_overtakes_a_write_to_a_resource_it_locks(store: SqlStore) -> None:
    first = store.submit(spec(SUBNET, VNET))
    vnet = store.submit(spec(VNET))  # its body holds the subnets: order matters
    second = store.submit(spec(SUBNET, VNET))
    assert _drain(store) == [[first.id], [vnet.id], [second.id]]


def test_coalescing_never_overtakes_a_job_that_locks_its_resource(store: SqlStore) -> None:
    first = store.submit(spec(SUBNET, VNET))
    nic = store.submit(spec(NIC, SUBNET, VNET))  # the NIC references the subnet
    second = store.submit(spec(SUBNET, VNET))
    assert _drain(store) == [[first.id], [nic.id], [second.id]]


def test_coalescing_folds_siblings_past_one_another(store: SqlStore) -> None:
    other_subnet = f"{VNET}/subnets/other"
    a1 = store.submit(spec(SUBNET, VNET))
    b1 = store.submit(spec(other_subnet, VNET))
    a2 = store.submit(spec(SUBNET, VNET))  # shares only the VNet key with b1: they commute
    b2 = store.submit(spec(other_subnet, VNET))
    assert _drain(store) == [[a1.id, a2.id], [b1.id, b2.id]]


def test_a_folded_sibling_still_waits_for_keys_a_lease_holds(store: SqlStore) -> None:
    other_subnet = f"{VNET}/subnets/other"
    nsg_holder = store.submit(spec(NSG))
    hold = claim(store)
    a1 = store.submit(spec(SUBNET, VNET))
    b1 = store.submit(spec(other_subnet, VNET))
    a2 = store.submit(spec(SUBNET, VNET, NSG))  # now also points at the held NSG
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [a1.id]
    store.complete(lease, applied(lease))
    store.complete(hold, applied(hold))
    assert _drain(store) == [[b1.id], [a2.id]]
    assert nsg_holder.seq < a1.seq


def test_expired_lease_is_taken_over_and_old_holder_cannot_complete(
    store: SqlStore, clock: ManualClock
) -> None:
    job = store.submit(spec(VM))
    old = claim(store, "slow-worker", ttl=10)
    clock.advance(9.9)
    assert store.claim("fast-worker", 10) is None, "not expired yet"
    clock.advance(0.1)
    new = claim(store, "fast-worker", ttl=10)
    assert [j.id for j in new.jobs] == [job.id]
    assert new.fence > old.fence
    assert new.jobs[0].attempts == 1

    with pytest.raises(LeaseLost) as lost:
        store.complete(old, applied(old, etag="from-the-past"))
    assert lost.value.lease_id == old.id
    assert lost.value.fence == old.fence
    after = store.get(job.id)
    assert after is not None
    assert after.state is JobState.RUNNING, "nothing recorded from the stale holder"
    assert after.result == {}
    with pytest.raises(LeaseLost):
        store.heartbeat(old, 10)
    with pytest.raises(LeaseLost):
        store.release(old)

    store.complete(new, applied(new, etag="current"))
    done = store.get(job.id)
    assert done is not None
    assert (done.outcome, done.result) == (Outcome.APPLIED, {"etag": "current"})


def test_expired_lease_cannot_complete_even_before_takeover(
    store: SqlStore, clock: ManualClock
) -> None:
    job = store.submit(spec(VM))
    lease = claim(store, ttl=5)
    clock.advance(5)
    with pytest.raises(LeaseLost, match=f"expired at {isoformat(lease.expires_at)}"):
        store.complete(lease, applied(lease))
    with pytest.raises(LeaseLost):
        store.heartbeat(lease, 30)
    current = store.get(job.id)
    assert current is not None
    assert current.outcome is None
    assert current.state is JobState.RUNNING
    # the next claim reaps it: back in the queue with the attempt counted
    again = claim(store, "w2")
    assert [(j.id, j.attempts) for j in again.jobs] == [(job.id, 1)]


def test_takeover_keeps_submission_order(store: SqlStore, clock: ManualClock) -> None:
    first = store.submit(spec(VM))
    lease = claim(store, ttl=5, max_batch=1)
    second = store.submit(spec(VM))
    clock.advance(6)
    retaken = claim(store, "w2", max_batch=1)
    assert [j.id for j in retaken.jobs] == [first.id]
    assert lease.fence < retaken.fence
    store.complete(retaken, applied(retaken))
    assert [j.id for j in claim(store, "w2").jobs] == [second.id]


def test_fences_strictly_increase_across_keys_and_store_objects(
    store: SqlStore, db: StoreDb, clock: ManualClock
) -> None:
    other = db.open(clock)
    for i in range(6):
        store.submit(spec(f"{VM}{i}"))
    fences = []
    for i in range(6):
        lease = claim(store if i % 2 else other, f"w{i}")
        fences.append(lease.fence)
    assert fences == sorted(set(fences))
    assert len(fences) == 6


def test_heartbeat_extends_with_same_fence(store: SqlStore, clock: ManualClock) -> None:
    store.submit(spec(VM))
    lease = claim(store, ttl=10)
    clock.advance(8)
    beat = store.heartbeat(lease, 10)
    assert beat.fence == lease.fence
    assert beat.id == lease.id
    assert beat.expires_at == clock.now() + 10
    assert [j.id for j in beat.jobs] == [j.id for j in lease.jobs]
    clock.advance(8)  # past the first expiry, inside the extended one
    assert store.claim("thief", 10) is None
    store.complete(lease, applied(lease))
    with pytest.raises(ValueError, match="ttl"):
        store.heartbeat(beat, 0)


def test_release_requeues_without_counting_an_attempt(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store, "shutting-down")
    store.release(lease)
    queued = store.get(job.id)
    assert queued is not None
    assert (queued.state, queued.attempts) == (JobState.QUEUED, 0)
    assert store.queue_depth() == 1
    again = claim(store, "w2")
    assert [j.id for j in again.jobs] == [job.id]
    assert again.fence > lease.fence
    with pytest.raises(LeaseLost):
        store.complete(lease, applied(lease))


def test_partial_completion_keeps_the_keys(store: SqlStore) -> None:
    a = store.submit(spec(VM))
    b = store.submit(spec(VM))
    lease = claim(store)
    store.complete(lease, [JobResult(a.id, Outcome.APPLIED)])
    rest = store.get(b.id)
    assert rest is not None
    assert rest.state is JobState.RUNNING
    late = store.submit(spec(VM))
    assert store.claim("w2", 30) is None, "the lease still holds the VM"
    beat = store.heartbeat(lease, 30)
    assert [j.id for j in beat.jobs] == [b.id]
    with pytest.raises(ValueError, match="not running under lease"):
        store.complete(lease, [JobResult(a.id, Outcome.APPLIED)])
    store.complete(lease, [JobResult(b.id, Outcome.ALREADY_SATISFIED)])
    assert [j.id for j in claim(store, "w2").jobs] == [late.id]
    with pytest.raises(LeaseLost, match="ended"):
        store.complete(lease, [])


def test_complete_is_atomic(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    stranger = store.submit(spec(NIC))
    lease = store.claim("w", 30, max_batch=1)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [job.id]
    with pytest.raises(ValueError, match="not running under lease"):
        store.complete(
            lease,
            [JobResult(job.id, Outcome.APPLIED), JobResult(stranger.id, Outcome.APPLIED)],
        )
    assert store.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="more than one result"):
        store.complete(lease, [JobResult(job.id, Outcome.APPLIED)] * 2)
    with pytest.raises(ValueError, match="outcome must be one of"):
        store.complete(lease, [JobResult(job.id, "done")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not JSON"):
        store.complete(lease, [JobResult(job.id, Outcome.APPLIED, result={"x": object()})])
    assert store.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]


def test_idempotency_key_returns_the_existing_job(store: SqlStore) -> None:
    first = store.submit(spec(VM, idem="deploy-42"))
    again = store.submit(spec(VM, idem="deploy-42", intent={"other": True}))
    assert again == first
    assert store.queue_depth() == 1
    lease = claim(store)
    store.complete(lease, applied(lease))
    done = store.submit(spec(VM, idem="deploy-42"))
    assert done.id == first.id
    assert done.state is JobState.DONE
    fresh = store.submit(spec(VM, idem="deploy-43"))
    assert fresh.id != first.id
    assert len(store.jobs()) == 2


def test_learned_scope_joins_keys_both_ways(store: SqlStore, clock: ManualClock) -> None:
    store.learn_scope(NIC, VM, "AnotherOperationInProgress on the VM")
    clock.advance(5)
    store.learn_scope(NIC.upper(), VM, "again")
    [scope] = store.learned_scopes()
    assert (scope.key, scope.other, scope.seen, scope.reason) == (
        NIC.lower(),
        VM.lower(),
        2,
        "again",
    )
    assert scope.last_seen - scope.first_seen == 5

    nic_job = store.submit(spec(NIC))
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [nic_job.id]
    assert set(lease.keys) == {NIC.lower(), VM.lower()}, "the learned key is held too"
    vm_job = store.submit(spec(VM))
    assert store.claim("w2", 30) is None
    store.complete(lease, applied(lease))
    vm_lease = claim(store, "w2")
    assert [j.id for j in vm_lease.jobs] == [vm_job.id]
    store.submit(spec(NIC))
    assert store.claim("w3", 30) is None, "the reverse direction blocks too"
    with pytest.raises(ValueError, match="itself"):
        store.learn_scope(VM, VM.upper(), "loop")


def test_events_keep_append_order(store: SqlStore) -> None:
    a = store.submit(spec(VM))
    b = store.submit(spec(NIC))

    def ev(job_id: str, kind: EventType, **extra: object) -> JobEvent:
        return JobEvent(
            ts="2026-01-01T00:00:00.0000000Z",
            job_id=job_id,
            resource_id=VM,
            writer="writer-a",
            event=kind.value,
            **extra,  # type: ignore[arg-type]
        )

    batch1 = [ev(a.id, EventType.SUBMITTED), ev(b.id, EventType.SUBMITTED)]
    batch2 = [
        ev(a.id, EventType.CLAIMED, fence=3),
        ev(a.id, EventType.CONFLICT, status=409, code="AnotherOperationInProgress"),
        ev(b.id, EventType.CLAIMED, fence=4),
        ev(a.id, EventType.APPLIED, detail={"etag": 'W/"9"'}),
    ]
    store.append_events(batch1)
    store.append_events(batch2)
    store.append_events([])
    assert store.events() == batch1 + batch2
    assert store.events(a.id) == [batch1[0], batch2[0], batch2[1], batch2[3]]
    assert store.events("unknown") == []
    with pytest.raises(TypeError):
        store.append_events([{"job_id": a.id}])  # type: ignore[list-item]


def test_jobs_listing_and_depth(store: SqlStore) -> None:
    ids = [store.submit(spec(f"{VM}{i}")).id for i in range(4)]
    lease = claim(store, max_batch=1)
    store.complete(lease, applied(lease))
    claim(store, max_batch=1)
    assert [j.id for j in store.jobs()] == ids
    assert [j.id for j in store.jobs(JobState.DONE)] == ids[:1]
    assert [j.id for j in store.jobs(JobState.RUNNING)] == ids[1:2]
    assert [j.id for j in store.jobs(JobState.QUEUED)] == ids[2:]
    assert [j.id for j in store.jobs(limit=2)] == ids[:2]
    assert store.queue_depth() == 2
    with pytest.raises(ValueError, match="state must be one of"):
        store.jobs("paused")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        store.jobs(limit=0)


def test_state_survives_reopening(db: StoreDb, clock: ManualClock) -> None:
    first = db.open(clock)
    job = first.submit(spec(VM, intent={"tags": {"a": "1"}}))
    lease = claim(first)
    first.close()
    second = db.open(clock)
    assert second.get(job.id) == lease.jobs[0]
    second.complete(lease, applied(lease))
    assert second.get(job.id).outcome is Outcome.APPLIED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (JobSpec(VM, {}, "w", ()), "at least one lock key"),
        (JobSpec(VM, {}, "w", VM), "not a single string"),  # type: ignore[arg-type]
        (JobSpec("", {}, "w", (VM,)), "resource_id"),
        (JobSpec(VM, {}, "", (VM,)), "writer"),
        (JobSpec(VM, {"x": {1, 2}}, "w", (VM,)), "not JSON-serialisable"),
        (JobSpec(VM, {}, "w", (VM,), on_stale="later"), "on_stale"),  # type: ignore[arg-type]
        (JobSpec(VM, {}, "w", (VM,), idempotency_key=""), "idempotency_key"),
    ],
)
def test_bad_specs_are_refused_clearly(store: SqlStore, bad: JobSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.submit(bad)
    assert store.jobs() == []


def test_bad_claim_arguments(store: SqlStore) -> None:
    store.submit(spec(VM))
    for ttl in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ttl"):
            store.claim("w", ttl)
    with pytest.raises(ValueError, match="max_batch"):
        store.claim("w", 30, max_batch=0)
    with pytest.raises(ValueError, match="owner"):
        store.claim("", 30)
    assert store.queue_depth() == 1


def test_spec_round_trips(store: SqlStore) -> None:
    original = JobSpec(
        resource_id=VM,
        intent={"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}, "n": [1, 2.5]},
        writer="pipeline-7",
        lock_keys=(VM.lower(), VNET.lower()),
        baseline_etag='W/"41"',
        on_stale=StalePolicy.DROP,
        idempotency_key="run-7",
        barrier=True,
    )
    job = store.submit(original)
    assert job.spec == original
    assert store.get(job.id).spec == original  # type: ignore[union-attr]


def test_awkward_text_survives_both_drivers(store: SqlStore) -> None:
    text = 'it\'s a \\ "quote" %s ? $1 ; -- é ☃ \x01'
    job = store.submit(spec(VM, intent={"tag": text}, writer=text))
    lease = claim(store)
    store.complete(lease, [JobResult(job.id, Outcome.FAILED, "invalid", text, {"why": text})])
    done = store.get(job.id)
    assert done is not None
    assert (done.spec.intent["tag"], done.writer, done.reason, done.result) == (
        text,
        text,
        text,
        {"why": text},
    )


def test_schema_from_a_newer_armguard_is_refused(db: StoreDb, clock: ManualClock) -> None:
    db.open(clock).close()
    if db.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(db.location) as conn:
            conn.execute("UPDATE armguard_schema SET version = 99")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db.location, autocommit=True) as conn:
            conn.execute(f"UPDATE {db.schema}.armguard_schema SET version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        db.open(clock)


@pytest.mark.postgres
def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as err:
        open_store(f"postgresql://app:hunter2@127.0.0.1:{port}/armguard?connect_timeout=2")
    assert "hunter2" not in str(err.value)


# -- opening stores by URL --------------------------------------------------------------------


def test_open_store_by_path_and_url(tmp_path: object, clock: ManualClock) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    plain = open_store(str(base / "a.db"), clock=clock)
    job = plain.submit(spec(VM))
    plain.close()
    url = open_store(f"sqlite:///{base / 'a.db'}", clock=clock)
    assert url.get(job.id) is not None
    url.close()
    for bad, message in [
        ("", "required"),
        ("redis://:secret@host/0", "unsupported store URL 'redis://:\\*\\*\\*@host/0'"),
        ("sqlite://host/x.db", "sqlite:///"),
        (":memory:", "needs a file path"),
        (str(base), "is a directory"),
        (str(base / "missing" / "q.db"), "does not exist"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_store(bad, clock=clock)


@pytest.mark.postgres
def test_open_store_postgres_url(pg_url: str, clock: ManualClock) -> None:
    store = open_store(f"{pg_url}?schema=t_open_store", clock=clock)
    try:
        job = store.submit(spec(VM))
        assert store.get(job.id) == job
    finally:
        store.drop_schema()  # type: ignore[attr-defined]
        store.close()
    with pytest.raises(ValueError, match="schema must be"):
        open_store(f"{pg_url}?schema=Robert'); DROP TABLE jobs;--")


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://app:s3cr%40t@db.example:5432/armguard") == (
        "postgresql://app:***@db.example:5432/armguard"
    )
    assert redact("postgres://app@db/armguard?sslmode=require&password=hunter2") == (
        "postgres://app@db/armguard?sslmode=require&password=***"
    )
    assert redact("host=db user=app password='a b c' dbname=x") == (
        "host=db user=app password=*** dbname=x"
    )
    assert redact("sqlite:////var/lib/armguard/q.db") == "sqlite:////var/lib/armguard/q.db"
    assert "hunter2" not in redact("postgresql://u:hunter2@h/d")


# -- linger (debounce) -------------------------------------------------------------------------


def test_linger_waits_for_a_burst_to_settle_then_claims_it_whole(
    store: SqlStore, clock: ManualClock
) -> None:
    first = store.submit(spec(VNET))
    clock.advance(0.3)
    assert store.claim("w", 30, linger=0.5, linger_max=5) is None, "a newer job is 0.3 s old"
    second = store.submit(spec(VNET))
    clock.advance(0.4)  # the first has waited 0.7 s, but the burst is only 0.4 s quiet
    assert store.claim("w", 30, linger=0.5, linger_max=5) is None
    clock.advance(0.1)
    lease = store.claim("w", 30, linger=0.5, linger_max=5)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [first.id, second.id]


def test_a_tight_burst_is_claimed_once_it_goes_quiet_not_a_whole_linger_later(
    store: SqlStore, clock: ManualClock
) -> None:
    burst = []
    for _ in range(10):  # ten writers 2 ms apart: the burst's mean gap is 2 ms
        burst.append(store.submit(spec(VNET)))
        clock.advance(0.002)
    # Quiet is 4 mean gaps, but at least linger / 10 = 50 ms: not yet…
    clock.advance(0.03)
    assert store.claim("w", 30, linger=0.5, linger_max=5) is None
    clock.advance(0.02)  # …now 50 ms since the last arrival, far short of the 0.5 s linger
    lease = store.claim("w", 30, linger=0.5, linger_max=5)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [j.id for j in burst]


def test_a_lone_job_waits_the_whole_linger(store: SqlStore, clock: ManualClock) -> None:
    store.submit(spec(VNET))
    clock.advance(0.49)
    assert store.claim("w", 30, linger=0.5, linger_max=5) is None
    clock.advance(0.01)
    assert store.claim("w", 30, linger=0.5, linger_max=5) is not None


def test_linger_max_bounds_the_wait_under_a_steady_stream(
    store: SqlStore, clock: ManualClock
) -> None:
    first = store.submit(spec(VNET))
    for _ in range(9):
        clock.advance(0.2)
        assert store.claim("w", 30, linger=0.5, linger_max=2) is None
        store.submit(spec(VNET))
    clock.advance(0.2)  # 2.0 s since the first: it must go now, with everything queued
    lease = store.claim("w", 30, linger=0.5, linger_max=2)
    assert lease is not None
    assert lease.jobs[0].id == first.id
    assert len(lease.jobs) == 10


def test_a_lingering_resource_blocks_its_keys_but_not_other_resources(
    store: SqlStore, clock: ManualClock
) -> None:
    nic1 = store.submit(spec(NIC))
    vm = store.submit(spec(VM))
    subnet1 = store.submit(spec(SUBNET, VNET))
    vnet = store.submit(spec(VNET))  # shares the subnet's VNet key, so it queues behind it
    clock.advance(1)
    nic2 = store.submit(spec(NIC))  # the NIC and the subnet are still getting jobs
    subnet2 = store.submit(spec(SUBNET, VNET))
    lease = store.claim("w", 30, linger=0.5, linger_max=5)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [vm.id], "only the settled, unblocked resource"
    assert store.claim("w", 30, linger=0.5, linger_max=5) is None, "the VNet waits its turn"
    clock.advance(0.5)
    order = [[j.id for j in lease.jobs]]
    store.complete(lease, applied(lease))
    while (got := store.claim("w", 30, linger=0.5, linger_max=5)) is not None:
        order.append([j.id for j in got.jobs])
        store.complete(got, applied(got))
    # The second subnet write may not pass the VNet write (its body holds the subnets).
    assert order == [[vm.id], [nic1.id, nic2.id], [subnet1.id], [vnet.id], [subnet2.id]]


def test_linger_is_validated(store: SqlStore) -> None:
    for bad in ({"linger": -1.0}, {"linger": 1.0, "linger_max": 0.5}, {"linger": float("nan")}):
        with pytest.raises(ValueError, match="linger"):
            store.claim("w", 30, **bad)  # type: ignore[arg-type]


def test_submit_many_queues_in_order_as_submit_would(store: SqlStore) -> None:
    earlier = store.submit(spec(VM, idem="deploy-1"))
    specs = [
        spec(NIC),
        spec(VM, idem="deploy-1", intent={"other": True}),  # used before: that job, unchanged
        spec(VNET, idem="deploy-2"),
        spec(SUBNET, VNET, idem="deploy-2"),  # used just before in this batch
        spec(NSG, barrier=True),
    ]
    jobs = store.submit_many(specs)
    assert jobs[1] == earlier
    assert jobs[3] == jobs[2]
    fresh = [jobs[0], jobs[2], jobs[4]]
    assert [j.spec for j in fresh] == [specs[0], specs[2], specs[4]]
    assert [j.state for j in fresh] == [JobState.QUEUED] * 3
    assert earlier.seq < fresh[0].seq < fresh[1].seq < fresh[2].seq
    assert all(store.get(j.id) == j for j in jobs)
    assert store.queue_depth() == 4
    assert [j.id for j in store.jobs(JobState.QUEUED)] == [earlier.id, *(j.id for j in fresh)]
    assert store.submit_many([]) == []


def test_submit_many_checks_every_spec_before_writing(store: SqlStore) -> None:
    bad = JobSpec(resource_id=VM, intent={}, writer="w", lock_keys=())
    with pytest.raises(ValueError, match="at least one lock key"):
        store.submit_many([spec(VM), bad])
    with pytest.raises(TypeError):
        store.submit_many(spec(VM))  # type: ignore[arg-type]
    assert store.jobs() == []


def test_submit_many_carries_more_jobs_than_one_statement_does(store: SqlStore) -> None:
    specs = [spec(f"{VM}{i}") for i in range(1203)]
    jobs = store.submit_many(specs)
    assert [j.spec.resource_id for j in jobs] == [s.resource_id for s in specs]
    assert [j.seq for j in jobs] == sorted({j.seq for j in jobs})
    assert store.queue_depth() == 1203
    lease = claim(store)
    assert [j.id for j in lease.jobs] == [jobs[0].id]


def test_a_claim_can_carry_the_last_batchs_completion(store: SqlStore, clock: ManualClock) -> None:
    first = store.submit(spec(VM))
    lease = claim(store)
    second = store.submit(spec(VM))  # same key: claimable only once the first is done
    done = JobEvent(
        ts=isoformat(clock.now()),
        job_id=first.id,
        resource_id=VM,
        writer="writer-a",
        event=EventType.APPLIED.value,
        fence=lease.fence,
    )
    nxt = store.claim("w1", 30, completing=Completion(lease, applied(lease, etag='W/"2"'), [done]))
    assert nxt is not None, "the completion freed the VM for the claim it rode in"
    assert [j.id for j in nxt.jobs] == [second.id]
    assert nxt.fence > lease.fence
    finished = store.get(first.id)
    assert finished is not None
    assert (finished.state, finished.outcome) == (JobState.DONE, Outcome.APPLIED)
    assert finished.result == {"etag": 'W/"2"'}
    assert [e.event for e in store.events(first.id)] == ["claimed", "applied"]
    with pytest.raises(LeaseLost, match="ended"):
        store.heartbeat(lease, 30)


def test_a_refused_completion_claims_nothing(store: SqlStore, clock: ManualClock) -> None:
    vm = store.submit(spec(VM))
    lease = claim(store, ttl=5)
    nic = store.submit(spec(NIC))
    clock.advance(6)  # expired: the completion must be refused, and the claim with it
    before = store.jobs()
    with pytest.raises(LeaseLost, match="expired"):
        store.claim("w1", 30, completing=Completion(lease, applied(lease)))
    assert store.jobs() == before, "neither the outcome nor the claim was recorded"
    taken = claim(store, "w2")  # the next plain claim reaps the lease and takes the VM over
    assert [(j.id, j.attempts) for j in taken.jobs] == [(vm.id, 1)]
    before = store.jobs()
    with pytest.raises(ValueError, match="not running under lease"):
        store.claim("w2", 30, completing=Completion(taken, [JobResult(nic.id, Outcome.APPLIED)]))
    assert store.jobs() == before
