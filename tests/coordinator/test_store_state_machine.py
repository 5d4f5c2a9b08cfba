"""Random sequences of store calls, against both backends, checked step by step against a
small reference model of the claim rules (written directly from the ``store`` docstring, with
no shared code). Each example gets a fresh database and a ManualClock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from armguard.clock import ManualClock
from armguard.coordinator.model import (
    Completion,
    JobResult,
    JobSpec,
    JobState,
    Lease,
    LeaseLost,
    Outcome,
)

if TYPE_CHECKING:
    from store_db import StoreDb

_RG = "/subscriptions/s/resourcegroups/rg/providers"
VNET = f"{_RG}/microsoft.network/virtualnetworks/vnet"
SUBNET = f"{VNET}/subnets/a"
SIBLING = f"{VNET}/subnets/b"
NIC = f"{_RG}/microsoft.network/networkinterfaces/nic"
VM = f"{_RG}/microsoft.compute/virtualmachines/vm"
NSG = f"{_RG}/microsoft.network/networksecuritygroups/nsg"
# Each resource's own keys chain into the next, as ARM's parent/reference locks do, so short
# random runs reach the interesting cases: multi-key waits, FIFO behind an older job, takeover;
# two subnets share only their VNet's key, so folding one past the other is reached too.
RESOURCES = {
    VNET: [VNET],
    SUBNET: [SUBNET, VNET],
    SIBLING: [SIBLING, VNET],
    NIC: [NIC, SUBNET],
    VM: [VM, NIC],
}
KEY_POOL = [VNET, VM, NSG]


@dataclass
class MJob:
    id: str
    seq: int
    resource: str
    keys: frozenset[str]
    barrier: bool
    state: JobState = JobState.QUEUED
    lease: str | None = None
    outcome: Outcome | None = None
    attempts: int = 0


@dataclass
class MLease:
    lease: Lease
    expires_at: float
    alive: bool = True
    jobs: set[str] = field(default_factory=set)


class Model:
    """The claim rules, naively: quadratic scans, no pagination, no SQL."""

    def __init__(self) -> None:
        self.jobs: dict[str, MJob] = {}
        self.leases: dict[str, MLease] = {}
        self.scopes: set[frozenset[str]] = set()
        self.idem: dict[str, str] = {}

    def eff(self, job: MJob) -> set[str]:
        out = set(job.keys)
        for pair in self.scopes:
            if pair & job.keys:
                out |= pair
        return out

    def valid(self, lease_id: str, now: float) -> bool:
        ml = self.leases[lease_id]
        return ml.alive and now < ml.expires_at

    def reap(self, now: float) -> None:
        for ml in self.leases.values():
            if ml.alive and now >= ml.expires_at:
                self.end(ml, requeue=True, count_attempt=True)

    def end(self, ml: MLease, requeue: bool, count_attempt: bool) -> None:
        ml.alive = False
        if requeue:
            for job_id in ml.jobs:
                job = self.jobs[job_id]
                job.state, job.lease = JobState.QUEUED, None
                job.attempts += int(count_attempt)
        ml.jobs = set()

    def held(self) -> set[str]:
        return {k for ml in self.leases.values() if ml.alive for k in ml.lease.keys}

    def predict(self, max_batch: int) -> list[MJob]:
        queued = sorted(
            (j for j in self.jobs.values() if j.state is JobState.QUEUED), key=lambda j: j.seq
        )
        held = self.held()

        def claimable(job: MJob, batch: list[MJob]) -> bool:
            if self.eff(job) & held:
                return False
            return not any(
                self.eff(k) & self.eff(job)
                for k in queued
                if k.seq < job.seq and all(k is not b for b in batch)
            )

        def may_follow(job: MJob, batch: list[MJob]) -> bool:
            # A follower may pass an older job it only shares a third key with (two subnets
            # of one VNet), never one whose resource it locks or that locks its resource.
            mine = self.eff(job)
            if mine & held:
                return False
            return not any(
                self.eff(k) & mine and (k.resource in mine or job.resource in self.eff(k))
                for k in queued
                if k.seq < job.seq and all(k is not b for b in batch)
            )

        head = next((j for j in queued if claimable(j, [])), None)
        if head is None:
            return []
        batch = [head]
        if head.barrier:
            return batch
        for job in queued:
            if job.seq <= head.seq or job.resource != head.resource:
                continue
            if len(batch) == max_batch or job.barrier or not may_follow(job, batch):
                break
            batch.append(job)
        return batch


class StoreMachine(RuleBasedStateMachine):
    new_db: Callable[[], StoreDb]

    def __init__(self) -> None:
        super().__init__()
        self.db = self.new_db()
        self.clock = ManualClock()
        self.store = self.db.open(self.clock)
        self.model = Model()
        self.issued: list[Lease] = []
        self.last_fence = 0
        self.final: dict[str, Outcome] = {}

    def teardown(self) -> None:
        self.db.destroy()

    @rule(
        resource=st.sampled_from(sorted(RESOURCES)),
        shout=st.booleans(),
        extra=st.sets(st.sampled_from(KEY_POOL), max_size=1),
        barrier=st.booleans(),
        idem=st.sampled_from([None, None, None, "i1", "i2"]),
    )
    def submit(
        self, resource: str, shout: bool, extra: set[str], barrier: bool, idem: str | None
    ) -> None:
        rid = resource.upper() if shout else resource
        spec = JobSpec(
            resource_id=rid,
            intent={"n": len(self.model.jobs)},
            writer="w",
            lock_keys=(rid, *RESOURCES[resource][1:], *sorted(extra)),
            barrier=barrier,
            idempotency_key=idem,
        )
        job = self.store.submit(spec)
        if idem is not None and idem in self.model.idem:
            assert job.id == self.model.idem[idem]
            return
        assert job.id not in self.model.jobs
        assert all(job.seq > j.seq for j in self.model.jobs.values())
        self.model.jobs[job.id] = MJob(
            job.id, job.seq, resource, frozenset({*RESOURCES[resource], *extra}), barrier
        )
        if idem is not None:
            self.model.idem[idem] = job.id

    @rule(
        owner=st.sampled_from(["w1", "w2", "w3"]),
        ttl=st.sampled_from([5.0, 10.0, 30.0]),
        max_batch=st.sampled_from([1, 2, 64]),
    )
    def claim(self, owner: str, ttl: float, max_batch: int) -> None:
        self._claim(owner, ttl, max_batch)

    def _claim(
        self, owner: str, ttl: float, max_batch: int, completing: Completion | None = None
    ) -> None:
        now = self.clock.now()
        self.model.reap(now)
        expected = self.model.predict(max_batch)
        lease = self.store.claim(owner, ttl, max_batch, completing=completing)
        if not expected:
            assert lease is None
            return
        assert lease is not None
        assert [j.id for j in lease.jobs] == [j.id for j in expected]
        assert lease.fence > self.last_fence, "fences strictly increase"
        self.last_fence = lease.fence
        assert set(lease.keys) == set().union(*(self.model.eff(j) for j in expected))
        assert [j.attempts for j in lease.jobs] == [j.attempts for j in expected]
        self.model.leases[lease.id] = MLease(lease, now + ttl, jobs={j.id for j in expected})
        for job in expected:
            job.state, job.lease = JobState.RUNNING, lease.id
        self.issued.append(lease)

    @rule(seconds=st.sampled_from([0.5, 3.0, 7.0, 15.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), ttl=st.sampled_from([5.0, 30.0]))
    def heartbeat(self, data: st.DataObject, ttl: float) -> None:
        lease = data.draw(st.sampled_from(self.issued))
        now = self.clock.now()
        if self.model.valid(lease.id, now):
            beat = self.store.heartbeat(lease, ttl)
            assert beat.fence == lease.fence
            self.model.leases[lease.id].expires_at = now + ttl
            assert {j.id for j in beat.jobs} == self.model.leases[lease.id].jobs
        else:
            self._expect_lost(lambda: self.store.heartbeat(lease, ttl))

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)))
    def complete(self, data: st.DataObject, outcome: Outcome) -> None:
        lease, results = self._results(data, outcome)
        if results is None:
            # a holder that paused past its TTL (or finished, or released) tries to finish
            stale = [JobResult(j.id, outcome) for j in lease.jobs]
            self._expect_lost(lambda: self.store.complete(lease, stale))
            return
        self.store.complete(lease, results)
        self._completed(lease, results)

    @precondition(lambda self: self.issued)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(list(Outcome)),
        owner=st.sampled_from(["w1", "w2"]),
        max_batch=st.sampled_from([1, 64]),
    )
    def complete_then_claim(
        self, data: st.DataObject, outcome: Outcome, owner: str, max_batch: int
    ) -> None:
        """A worker's next claim carrying its last batch's outcomes: the claim sees them."""
        lease, results = self._results(data, outcome)
        if results is None:
            stale = Completion(lease, [JobResult(j.id, outcome) for j in lease.jobs])
            self._expect_lost(lambda: self.store.claim(owner, 30.0, completing=stale))
            return
        self._completed(lease, results)
        self._claim(owner, 30.0, max_batch, Completion(lease, results))

    def _results(
        self, data: st.DataObject, outcome: Outcome
    ) -> tuple[Lease, list[JobResult] | None]:
        """An issued lease and, if it is still valid, results for some of its running jobs."""
        lease = data.draw(st.sampled_from(self.issued))
        if not self.model.valid(lease.id, self.clock.now()):
            return lease, None
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.model.leases[lease.id].jobs)), unique=True)
        )
        return lease, [JobResult(j, outcome, result={"by": lease.fence}) for j in chosen]

    def _completed(self, lease: Lease, results: list[JobResult]) -> None:
        ml = self.model.leases[lease.id]
        for r in results:
            job = self.model.jobs[r.job_id]
            job.state, job.outcome = JobState.DONE, r.outcome
            ml.jobs.discard(r.job_id)
        if not ml.jobs:
            self.model.end(ml, requeue=False, count_attempt=False)

    @precondition(lambda self: self.issued)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.issued))
        if self.model.valid(lease.id, self.clock.now()):
            self.store.release(lease)
            self.model.end(self.model.leases[lease.id], requeue=True, count_attempt=False)
        else:
            self._expect_lost(lambda: self.store.release(lease))

    @rule(pair=st.lists(st.sampled_from(KEY_POOL), min_size=2, max_size=2, unique=True))
    def learn(self, pair: list[str]) -> None:
        self.store.learn_scope(pair[0], pair[1], "409 AnotherOperationInProgress")
        self.model.scopes.add(frozenset(pair))

    def _expect_lost(self, call: Callable[[], object]) -> None:
        before = self.store.jobs()
        try:
            call()
        except LeaseLost:
            pass
        else:
            raise AssertionError("a stale or ended lease was accepted")
        assert self.store.jobs() == before, "a rejected call changed the store"

    @invariant()
    def store_matches_model(self) -> None:
        jobs = self.store.jobs()
        assert len(jobs) == len(self.model.jobs)
        for job in jobs:
            m = self.model.jobs[job.id]
            assert (job.state, job.outcome, job.attempts) == (m.state, m.outcome, m.attempts)
            if job.state is JobState.DONE:
                assert job.outcome is not None
                assert self.final.setdefault(job.id, job.outcome) == job.outcome
        assert self.store.queue_depth() == sum(
            m.state is JobState.QUEUED for m in self.model.jobs.values()
        )

    @invariant()
    def no_key_held_twice(self) -> None:
        now = self.clock.now()
        seen: dict[str, str] = {}
        for lease in self.issued:
            if not self.model.valid(lease.id, now):
                continue
            for key in lease.keys:
                assert key not in seen, f"{key} held by {seen.get(key)} and {lease.id}"
                seen[key] = lease.id


def test_store_state_machine(db_factory: Callable[[], StoreDb]) -> None:
    machine = type("Machine", (StoreMachine,), {"new_db": staticmethod(db_factory)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
