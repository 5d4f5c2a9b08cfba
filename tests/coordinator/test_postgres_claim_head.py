"""PostgreSQL decides a claim's common case in the server (``armguard_claim_head_v2``: a free
head with no followers) and leaves the rest to the shared rules of ``sql_store`` in the same
transaction. Both must give what the shared rules alone give: the same scenario on SQLite,
which always runs them, must lease the same jobs under the same keys, fences and expiries and
record the same events."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from armguard.clock import ManualClock, SystemClock
from armguard.coordinator.model import Completion, JobResult, JobSpec, Lease, Outcome
from armguard.coordinator.postgres_store import PostgresStore
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.events import EventType, JobEvent

pytestmark = pytest.mark.postgres

RG = "/subscriptions/s/resourceGroups/rg/providers"
VNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet"


def _spec(rid: str, *others: str, barrier: bool = False, writer: str = "w") -> JobSpec:
    return JobSpec(
        resource_id=rid,
        intent={"rid": rid},
        writer=writer,
        lock_keys=(rid.lower(), *(o.lower() for o in others)),
        barrier=barrier,
    )


def _note(event: str, job_id: str) -> JobEvent:
    return JobEvent(ts="t", job_id=job_id, resource_id="r", writer="w", event=event)


def _scenario(store: SqlStore, clock: ManualClock) -> list[Any]:
    """Claims through every way the server-side claim answers: it decides (free heads, a
    barrier with followers, ``max_batch`` 1, an empty queue) or hands over (a blocked head,
    followers to coalesce, an expired lease to reap). Returns what was seen, job ids replaced
    by their submission index."""
    store.learn_scope(f"{RG}/x/nsg", f"{RG}/x/other", "test")
    specs = [
        _spec(f"{VNET}/subnets/a", VNET, f"{RG}/x/nsg", writer="é-writer"),  # 0: a scope too
        _spec(f"{RG}/vm/1"),  # 1
        _spec(VNET, barrier=True),  # 2: blocked by 0 while it runs
        _spec(f"{RG}/vm/2"),  # 3
        _spec(f"{RG}/vm/2"),  # 4: follower of 3
        _spec(f"{RG}/nic/1", barrier=True),  # 5: a barrier with a follower
        _spec(f"{RG}/nic/1"),  # 6
        _spec(f"{RG}/vm/3"),  # 7
        _spec(f"{RG}/vm/3"),  # 8: coalesced with 7
        _spec(f"{RG}/nic/2", barrier=True),  # 9: a free barrier with a follower
        _spec(f"{RG}/nic/2"),  # 10
        _spec(f"{RG}/vm/4"),  # 11: a free head with a follower, at max_batch 1
        _spec(f"{RG}/vm/4"),  # 12
    ]
    jobs = store.submit_many(specs)
    index = {job.id: n for n, job in enumerate(jobs)}
    seen: list[Any] = []

    def claim(max_batch: int = 64, owed: Lease | None = None, **kw: Any) -> Lease | None:
        completing = (
            Completion(owed, [JobResult(j.id, Outcome.APPLIED) for j in owed.jobs])
            if owed is not None
            else None
        )
        lease = store.claim("o", ttl=30, max_batch=max_batch, completing=completing, **kw)
        seen.append(
            None
            if lease is None
            else (
                [index[j.id] for j in lease.jobs],
                [j.state.value for j in lease.jobs],
                lease.keys,
                lease.fence,
                lease.expires_at,
            )
        )
        return lease

    claim(events=[_note("note", jobs[0].id)])  # 0 alone: a free head, no followers
    second = claim()  # 1
    claim()  # 2 is blocked by 0: the general rules pass it and take 3 with its follower 4
    claim(owed=second)  # 2 is still blocked; 5 is a barrier: alone
    clock.advance(60)  # every lease expires: the next claim reaps them
    held = [claim(), claim(max_batch=1), claim(max_batch=1), claim()]
    for lease in held:
        assert lease is not None
        store.complete(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])
    # Every head is free now: the barrier 9 and the head 11 have followers.
    owed = None
    for turn in range(20):
        owed = claim(max_batch=1 if turn % 2 else 64, owed=owed)
        if owed is None:
            break
    claim(events=[_note("after", jobs[0].id)])  # an empty queue still records its events
    events = []
    for event in store.events():
        data = json.loads(event.to_json())
        data["job_id"] = index[data["job_id"]]
        events.append(data)
    return [seen, events]


def test_the_server_side_claim_gives_what_the_shared_rules_give(pg_url: str) -> None:
    start = 1_700_000_000.123456
    lite_clock, pg_clock = ManualClock(start), ManualClock(start)
    lite = SqliteStore(Path(tempfile.mkdtemp(prefix="armguard-head-")) / "q.db", clock=lite_clock)
    schema = "t_claim_head_same"
    pg = PostgresStore(pg_url, clock=pg_clock, schema=schema)
    pg.drop_schema()
    pg.close()
    pg = PostgresStore(pg_url, clock=pg_clock, schema=schema)
    try:
        assert _scenario(pg, pg_clock) == _scenario(lite, lite_clock)
    finally:
        pg.drop_schema()
        pg.close()
        lite.close()


def test_on_the_server_clock_a_claimed_event_has_arm_time_within_the_lease(pg_url: str) -> None:
    store = PostgresStore(pg_url, clock=SystemClock(), schema="t_claim_head_time")
    try:
        job = store.submit(_spec(f"{RG}/vm/t"))
        lease = store.claim("o", ttl=30)
        assert lease is not None
        assert [j.id for j in lease.jobs] == [job.id]
        [claimed] = [e for e in store.events(job.id) if e.event == EventType.CLAIMED.value]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", claimed.ts)
        assert claimed.fence == lease.fence
        assert claimed.detail == {"keys": [f"{RG}/vm/t".lower()], "batch": 1}
        running = store.get(job.id)
        assert running is not None
        # The lease was made at the claim's "now": its jobs' updated_at, ttl before expiry.
        assert lease.expires_at - 30 == pytest.approx(running.updated_at, abs=1e-6)
    finally:
        store.drop_schema()
        store.close()


def test_a_free_head_alone_on_its_resource_is_leased_by_the_server(pg_url: str) -> None:
    """The common case really takes the one-transaction path (what the benchmarks' gains rest
    on), and what it cannot decide (a head with followers) is left to the rules."""
    store = PostgresStore(pg_url, clock=ManualClock(1_700_000_000.0), schema="t_claim_head_taken")
    try:
        one, two = store.submit_many([_spec(f"{RG}/vm/1"), _spec(f"{RG}/vm/2")])
        first = store.claim("o", ttl=30)
        assert first is not None
        assert [j.id for j in first.jobs] == [one.id]
        assert store.claims_in_server == 1
        done = Completion(first, [JobResult(one.id, Outcome.APPLIED)])
        second = store.claim("o", ttl=30, completing=done)
        assert second is not None
        assert [j.id for j in second.jobs] == [two.id]
        assert store.claims_in_server == 2
        burst = store.submit_many([_spec(f"{RG}/vm/3"), _spec(f"{RG}/vm/3")])
        done = Completion(second, [JobResult(two.id, Outcome.APPLIED)])
        batch = store.claim("o", ttl=30, completing=done)
        assert batch is not None
        assert [j.id for j in batch.jobs] == [j.id for j in burst]
        assert store.claims_in_server == 2
        # The completion carried by the claim that handed over was committed all the same.
        finished = store.get(two.id)
        assert finished is not None
        assert finished.outcome is Outcome.APPLIED
    finally:
        store.drop_schema()
        store.close()
