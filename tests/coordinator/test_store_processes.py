"""Several OS processes drain one queue through one database (an SQLite file, or PostgreSQL).

Every worker marks each key it holds in a shared directory with ``O_CREAT | O_EXCL`` while its
lease is live, so two processes holding one key at the same moment is seen as it happens, not
inferred. Afterwards: every job completed exactly once, by the lease the store says did it, and
for every key the jobs were applied in submission order.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from armguard.clock import ManualClock
from armguard.coordinator.model import JobResult, JobSpec, JobState, Outcome
from armguard.coordinator.stores import open_store

if TYPE_CHECKING:
    from store_db import StoreDb

WORKERS = 4
RG = "/subscriptions/s/resourceGroups/rg/providers"
VNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet"


def _jobs() -> list[JobSpec]:
    """A mixed backlog: hot VNet with subnets waiting on it, VMs with NICs, barriers."""
    specs = []
    for i in range(72):
        kind = i % 6
        if kind == 0:
            rid, keys = VNET, (VNET,)
        elif kind in (1, 2):
            rid = f"{VNET}/subnets/s{i % 4}"
            keys = (rid, VNET)
        elif kind == 3:
            rid = f"{RG}/Microsoft.Compute/virtualMachines/vm{i % 3}"
            keys = (rid,)
        else:
            rid = f"{RG}/Microsoft.Network/networkInterfaces/nic{i % 2}"
            keys = (rid, f"{RG}/Microsoft.Compute/virtualMachines/vm{i % 3}")
        specs.append(
            JobSpec(
                resource_id=rid,
                intent={"i": i},
                writer=f"writer-{i % 5}",
                lock_keys=tuple(k.lower() for k in keys),
                barrier=i % 11 == 0,
            )
        )
    return specs


def _worker(url: str, owner: str, marks: str, out: str) -> None:
    store = open_store(url)
    records: list[dict[str, Any]] = []
    overlaps: list[str] = []
    while True:
        lease = store.claim(owner, ttl=120, max_batch=4)
        if lease is None:
            if store.queue_depth() == 0 and not store.jobs(JobState.RUNNING, limit=1):
                break
            time.sleep(0.001)  # yield the CPU to the holders; the loop itself re-checks state
            continue
        made = []
        for key in lease.keys:
            path = Path(marks) / hashlib.sha256(key.encode()).hexdigest()
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                made.append(path)
            except FileExistsError:
                overlaps.append(key)
        time.sleep(0.002)  # the "ARM write": long enough for an overlapping holder to show
        for path in made:
            path.unlink()
        store.complete(
            lease,
            [JobResult(j.id, Outcome.APPLIED, result={"fence": lease.fence}) for j in lease.jobs],
        )
        records.append(
            {
                "fence": lease.fence,
                "keys": list(lease.keys),
                "jobs": [j.id for j in lease.jobs],
            }
        )
    store.close()
    Path(out).write_text(json.dumps({"records": records, "overlaps": overlaps}))


def test_processes_share_one_queue_safely(db: StoreDb) -> None:
    parent = db.open(ManualClock())
    submitted = [parent.submit(spec) for spec in _jobs()]
    work = Path(tempfile.mkdtemp(prefix="armguard-procs-"))
    marks = work / "marks"
    marks.mkdir()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(db.url(), f"p{n}", str(marks), str(work / f"{n}.json")))
        for n in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    outputs = [json.loads((work / f"{n}.json").read_text()) for n in range(WORKERS)]
    assert [o["overlaps"] for o in outputs] == [[]] * WORKERS, "a key was held twice at once"
    records = [r for o in outputs for r in o["records"]]
    assert sum(1 for o in outputs if o["records"]) >= 2, "the work was not shared"

    completed = [job_id for r in records for job_id in r["jobs"]]
    assert sorted(completed) == sorted(j.id for j in submitted), "each job exactly once"
    fences = [r["fence"] for r in records]
    assert len(set(fences)) == len(fences)
    by_fence = {job_id: r["fence"] for r in records for job_id in r["jobs"]}
    for job in parent.jobs(limit=1000):
        assert job.state is JobState.DONE
        assert job.outcome is Outcome.APPLIED
        assert job.result == {"fence": by_fence[job.id]}, "recorded by the lease that ran it"

    # per key, jobs ran in submission order: ordered by fence, then by seq within a lease
    seq = {j.id: j.seq for j in submitted}
    keys_of = {j.id: set(j.spec.lock_keys) for j in submitted}
    for key in {k for j in submitted for k in j.spec.lock_keys}:
        ran = [
            seq[job_id]
            for r in sorted(records, key=lambda r: r["fence"])
            for job_id in sorted(r["jobs"], key=seq.__getitem__)
            if key in keys_of[job_id]
        ]
        assert ran == sorted(ran), f"writes to {key} overtook each other"


def test_threads_share_one_store_object(db: StoreDb) -> None:
    """One store object used by several threads at once (SQLite: a connection per thread;
    PostgreSQL: one connection taking turns) keeps the same guarantees."""
    store = db.open(ManualClock())
    submitted = [store.submit(spec) for spec in _jobs()]
    guard = threading.Lock()
    held: set[str] = set()
    overlaps: list[str] = []
    done: list[str] = []
    errors: list[BaseException] = []

    def run(owner: str) -> None:
        try:
            while (lease := store.claim(owner, ttl=3600, max_batch=4)) is not None or (
                store.queue_depth() or store.jobs(JobState.RUNNING, limit=1)
            ):
                if lease is None:
                    continue
                with guard:
                    overlaps.extend(k for k in lease.keys if k in held)
                    held.update(lease.keys)
                with guard:
                    held.difference_update(lease.keys)
                store.complete(lease, [JobResult(j.id, Outcome.APPLIED) for j in lease.jobs])
                with guard:
                    done.extend(j.id for j in lease.jobs)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert overlaps == []
    assert sorted(done) == sorted(j.id for j in submitted)
    assert all(j.state is JobState.DONE for j in store.jobs())
