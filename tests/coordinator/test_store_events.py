"""Events riding with state changes: claim, complete and release append them in their own
transaction (all or nothing), and the write loop makes its buffered events durable before
every ARM call. Run against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from armguard.arm.client import ArmClient, ArmResponse, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import JobResult, JobSpec, JobState, Lease, LeaseLost, Outcome
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.events import EventType, JobEvent
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

if TYPE_CHECKING:
    from store_db import StoreDb

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
NIC = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic1"


def spec(resource: str, idem: str | None = None) -> JobSpec:
    return JobSpec(
        resource_id=resource,
        intent={"tags": {"n": "1"}},
        writer="writer-a",
        lock_keys=(resource.lower(),),
        idempotency_key=idem,
    )


def ev(job_id: str, what: EventType, **extra: Any) -> JobEvent:
    return JobEvent(
        ts="2026-01-01T00:00:00.0000000Z",
        job_id=job_id,
        resource_id=VM,
        writer="writer-a",
        event=what.value,
        **extra,
    )


def claim(store: SqlStore, *events: JobEvent, ttl: float = 30.0) -> Lease:
    lease = store.claim("w1", ttl, 64, events)
    assert lease is not None
    return lease


def test_a_claim_records_claimed_events_after_the_callers(store: SqlStore) -> None:
    a = store.submit(spec(VM))
    b = store.submit(spec(VM))
    earlier = ev(a.id, EventType.BACKOFF, delay=1.5)
    lease = claim(store, earlier)

    events = store.events()
    assert events[0] == earlier
    claimed = events[1:]
    assert [(e.job_id, e.event) for e in claimed] == [(a.id, "claimed"), (b.id, "claimed")]
    for e in claimed:
        assert e.fence == lease.fence
        assert e.resource_id == VM
        assert e.writer == "writer-a"
        assert dict(e.detail) == {"keys": [VM.lower()], "batch": 2}


def test_a_claim_that_finds_nothing_still_appends_the_callers_events(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    claim(store)
    leftover = ev(job.id, EventType.LEASE_LOST, message="gone")
    assert store.claim("w2", 30, 64, [leftover]) is None
    assert store.events(job.id)[-1] == leftover


def test_complete_appends_events_with_the_outcomes(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    closing = [ev(job.id, EventType.VERIFIED), ev(job.id, EventType.APPLIED)]
    store.complete(lease, [JobResult(job.id, Outcome.APPLIED)], closing)
    assert [e.event for e in store.events(job.id)] == ["claimed", "verified", "applied"]
    done = store.get(job.id)
    assert done is not None
    assert done.outcome is Outcome.APPLIED


def test_a_fenced_off_complete_or_release_appends_nothing(
    store: SqlStore, clock: ManualClock
) -> None:
    job = store.submit(spec(VM))
    old = claim(store, ttl=5)
    clock.advance(6)
    new = claim(store)  # takeover
    before = store.events(job.id)
    with pytest.raises(LeaseLost):
        store.complete(old, [JobResult(job.id, Outcome.APPLIED)], [ev(job.id, EventType.APPLIED)])
    with pytest.raises(LeaseLost):
        store.release(old, [ev(job.id, EventType.RELEASED)])
    assert store.events(job.id) == before
    current = store.get(job.id)
    assert current is not None
    assert current.state is JobState.RUNNING
    assert [j.id for j in new.jobs] == [job.id]


def test_release_appends_events_and_requeues(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    store.release(lease, [ev(job.id, EventType.READ), ev(job.id, EventType.RELEASED)])
    assert [e.event for e in store.events(job.id)] == ["claimed", "read", "released"]
    again = store.get(job.id)
    assert again is not None
    assert again.state is JobState.QUEUED


def test_events_with_no_state_change_may_ride_an_empty_completion(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    store.complete(lease, [], [ev(job.id, EventType.READ)])
    assert [e.event for e in store.events(job.id)] == ["claimed", "read"]
    running = store.get(job.id)
    assert running is not None
    assert running.state is JobState.RUNNING


def test_more_events_than_one_statement_takes_stay_in_order(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    many = [ev(job.id, EventType.WAITING, attempt=n) for n in range(450)]
    store.complete(lease, [JobResult(job.id, Outcome.APPLIED)], many)
    assert store.events(job.id)[1:] == many


def test_bad_events_are_refused_before_anything_changes(store: SqlStore) -> None:
    job = store.submit(spec(VM))
    lease = claim(store)
    with pytest.raises(TypeError):
        store.complete(lease, [JobResult(job.id, Outcome.APPLIED)], [{"job_id": job.id}])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.release(lease, ev(job.id, EventType.READ))  # type: ignore[arg-type]
    still = store.get(job.id)
    assert still is not None
    assert still.state is JobState.RUNNING
    assert [e.event for e in store.events(job.id)] == ["claimed"]


def test_concurrent_submits_with_one_idempotency_key_make_one_job(
    db: StoreDb, clock: ManualClock
) -> None:
    stores = [db.open(clock) for _ in range(4)]
    ids: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def go(store: SqlStore) -> None:
        start.wait()
        for n in range(10):
            job = store.submit(spec(f"{VM}{n}", idem=f"run-{n}"))
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 40
    assert len(set(ids)) == 10
    assert len(stores[0].jobs()) == 10


@dataclass(frozen=True)
class _Nested:
    x: int


def test_to_json_is_the_asdict_line() -> None:
    def reference(e: JobEvent) -> str:
        import json

        data = {k: v for k, v in asdict(e).items() if v is not None and v != {}}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    samples = [
        ev("j", EventType.CLAIMED, fence=3, detail={"keys": ["b", "a"], "batch": 2}),
        ev("j", EventType.CONFLICT, status=409, code="AnotherOperationInProgress", kind="x"),
        ev("j", EventType.BACKOFF, delay=0.25, detail={"nested": {"z": [1, (2, 3)]}}),
        ev("j", EventType.READ, detail={}),
        ev("j", EventType.READ, detail={"obj": _Nested(4)}),  # json cannot take it as it is
    ]
    for e in samples:
        assert e.to_json() == reference(e)
        assert JobEvent.from_json(e.to_json()).event == e.event


class _Recording:
    """The real ARM client, plus a note of which events the store held when each call left."""

    def __init__(self, client: ArmClient, store: SqlStore, job_id: str) -> None:
        self.client = client
        self.store = store
        self.job_id = job_id
        self.seen: list[tuple[str, str, list[str]]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ArmResponse:
        durable = [e.event for e in self.store.events(self.job_id)]
        self.seen.append((method, path, durable))
        return self.client.request(
            method, path, api_version=api_version, body=body, headers=headers, params=params
        )


def test_the_write_loop_makes_its_history_durable_before_each_arm_call(
    db: StoreDb, clock: ManualClock
) -> None:
    with emulator(clock=clock) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        created = setup.request(
            "PUT",
            VNET,
            api_version="2024-05-01",
            body={
                "location": "eastus",
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
            },
        )
        assert created.status in (200, 201)
        clock.advance(600)
        store = db.open(clock)
        job = submit(store, VNET, TagsIntent({"env": "prod"}), "alice")
        observer = db.open(clock)  # another connection: sees only what was committed
        recording: list[_Recording] = []

        def client_for(who: str) -> _Recording:
            client = ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url)
            recording.append(_Recording(client, observer, job.id))
            return recording[-1]

        worker = Worker(
            lambda: db.open(clock), client_for, clock, settings=WorkerSettings(lease_ttl=3600)
        )
        worker.run_until_idle()

    calls = recording[0].seen
    write = next(n for n, (m, _, _) in enumerate(calls) if m == "PUT")
    # Every event up to the write is durable when the write leaves, the write's own included.
    assert calls[write][2] == ["claimed", "read", "write"]
    if write + 1 < len(calls):  # polling our own operation: the wait was recorded first
        assert calls[write + 1][2][-1] == "waiting"
    final = [e.event for e in store.events(job.id)]
    assert final[:3] == ["claimed", "read", "write"]
    assert final[-2:] == ["verified", "applied"]
    done = store.get(job.id)
    assert done is not None
    assert done.outcome is Outcome.APPLIED


@pytest.mark.postgres
def test_synchronous_commit_is_an_explicit_opt_in(pg_url: str, clock: ManualClock) -> None:
    from armguard.coordinator.postgres_store import PostgresStore
    from armguard.coordinator.stores import open_store

    def setting(store: object) -> str:
        assert isinstance(store, PostgresStore)
        with store._read() as tx:
            return str(tx.rows("SHOW synchronous_commit")[0][0])

    with psycopg.connect(pg_url) as conn:
        server = str(conn.execute("SHOW synchronous_commit").fetchone()[0])  # type: ignore[index]
    plain = open_store(f"{pg_url}?schema=t_sync_default", clock=clock)
    stores = [plain]
    try:
        assert setting(plain) == server  # untouched unless asked
        for value in ("on", "off", "local"):
            chosen = open_store(f"{pg_url}?schema=t_sync_{value}&synchronous_commit={value}")
            stores.append(chosen)
            assert setting(chosen) == value
            job = chosen.submit(spec(VM))
            assert chosen.get(job.id) == job
    finally:
        for store in stores:
            store.drop_schema()  # type: ignore[attr-defined]
            store.close()
    with pytest.raises(ValueError, match="synchronous_commit must be one of"):
        open_store(f"{pg_url}?synchronous_commit=maybe", clock=clock)
    with pytest.raises(ValueError, match="once"):
        open_store(f"{pg_url}?synchronous_commit=off&synchronous_commit=on", clock=clock)
