"""A PostgreSQL store connection re-plans its statements as the jobs table grows.

PostgreSQL keeps a prepared statement's generic plan, made on the table sizes of the moment,
until an ANALYZE. A worker that started on a new store planned its claim on a near-empty table
(read every queued job and sort them; walk the queue index filtering on the resource) and kept
that plan once thousands of jobs were queued: a cold job cost 2.8 ms where a fresh connection
paid 0.8, until autovacuum came by. The store now prepares its statements afresh each time the
table has grown fourfold; ``benchmarks/store_overhead.py``'s ``cold_after_small`` prices it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from armguard.clock import ManualClock
from armguard.coordinator.model import Completion, JobResult, JobSpec, Outcome
from armguard.coordinator.sql_store import SqlStore

if TYPE_CHECKING:
    from store_db import StoreDb

pytestmark = pytest.mark.postgres

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
# The claim's first read: a free head with no followers is claimed by the server-side function
# (PostgresStore._claim_head), whose call is prepared like every statement; its own statements
# are re-planned along with it (DISCARD PLANS).
CLAIM_HEAD = "SELECT * FROM armguard_claim_head_v2%"


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _spec(i: int) -> JobSpec:
    return JobSpec(resource_id=f"{VM}{i}", intent={"i": i}, writer="w", lock_keys=(f"{VM}{i}",))


def _claim_plans(store: SqlStore) -> list[tuple[str, int]]:
    """The claim's first statement as this session prepared it: (text, times planned), in
    the order prepared. Only the store's own session can see its prepared statements."""
    with store._read() as tx:
        rows = tx.rows(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE ? ORDER BY prepare_time",
            (CLAIM_HEAD,),
        )
    return [(str(text), int(used)) for text, used in rows]


def _claim_one(store: SqlStore, owed: Completion | None) -> Completion:
    lease = store.claim("w", 60, max_batch=1, completing=owed)
    assert lease is not None
    return Completion(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs], [])


def test_claims_are_planned_afresh_once_the_jobs_table_has_grown_fourfold(db: StoreDb) -> None:
    store = db.open(ManualClock())
    first = store.submit_many([_spec(i) for i in range(300)])
    owed = None
    for _ in range(10):  # past the five custom plans: PostgreSQL settles on a generic one
        owed = _claim_one(store, owed)
    [(small_text, small_used)] = _claim_plans(store)
    assert small_used == 10

    store.submit_many([_spec(i) for i in range(300, 1100)])  # short of fourfold: same plans
    owed = _claim_one(store, owed)
    assert _claim_plans(store) == [(small_text, 11)]

    store.submit_many([_spec(i) for i in range(1100, 1300)])  # 1,300 jobs: over 4 x 300
    claimed = []
    for _ in range(3):
        owed = _claim_one(store, owed)
        claimed += [j.id for j in owed.lease.jobs]
    plans = _claim_plans(store)
    assert plans[0] == (small_text, 11), "the small table's plan is no longer used"
    assert [used for _, used in plans[1:]] == [3], "the claims after the growth plan afresh"
    # The new text is the same statement: the claims go on in queue order.
    assert claimed == [job.id for job in first[11:14]]
