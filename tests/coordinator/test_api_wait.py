"""The Python API on both stores (an SQLite file, a real PostgreSQL schema) and a served
emulator: every intent kind submitted and waited for, waits woken by completions (not by a
polling interval), asyncio waits, timeouts, bulk order and idempotency keys."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from armguard import (
    ActionIntent,
    Coordinator,
    DeleteIntent,
    MergeIntent,
    Outcome,
    PutIntent,
    ResizeIntent,
    Submission,
    TagsIntent,
    WaitTimeout,
)
from armguard.coordinator.waiting import RECHECK_SECONDS
from armguard.testing import DEFAULT_SUBSCRIPTION, EmulatorHandle, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/api"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
VNET_BODY = {
    "location": "eastus",
    "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
}
VM_BODY = {
    "location": "eastus",
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"imageReference": {"offer": "ubuntu"}},
        "osProfile": {"computerName": "vm1", "adminUsername": "azureuser"},
    },
}
DONE_OK = {Outcome.APPLIED, Outcome.ALREADY_SATISFIED}


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with emulator(time_scale=0) as handle:
        yield handle


@pytest.fixture
def api(db: Any) -> Iterator[Coordinator]:
    with Coordinator(db.url(), writer="api-tests") as coordinator:
        yield coordinator


class Running:
    """A worker running in a thread until the block ends, as a service would run it."""

    def __init__(self, api: Coordinator, arm: EmulatorHandle, **settings: Any) -> None:
        from armguard import WorkerSettings

        self.worker = api.worker(arm.base_url, settings=WorkerSettings(**settings))
        self.thread = threading.Thread(target=self.worker.run_forever)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def _setup(api: Coordinator, arm: EmulatorHandle) -> None:
    jobs = api.submit_many(
        [
            Submission(RG, PutIntent({"location": "eastus"}), writer="setup"),
            Submission(VNET, PutIntent(VNET_BODY), writer="setup"),
        ]
    )
    api.run_worker(arm.base_url)
    assert [j.outcome for j in api.wait_all(jobs, timeout=5)] == [Outcome.APPLIED] * 2


def test_every_intent_kind_submitted_and_waited_for(api: Coordinator, arm: EmulatorHandle) -> None:
    _setup(api, arm)
    kinds = [
        (VM, PutIntent(VM_BODY)),
        (VM, TagsIntent({"env": "prod", "tier": "web"})),
        (VM, TagsIntent(remove=("tier",))),
        (VM, MergeIntent({"tags": {"owner": "media"}})),
        (VM, ResizeIntent("Standard_D4s_v5")),
        (VM, ActionIntent("powerOff")),
        ({"kind": "action", "name": "start"}, None),
        (VM, DeleteIntent()),
    ]
    jobs = []
    for target, intent in kinds:
        if isinstance(target, dict):  # the JSON form of an intent is accepted too
            jobs.append(api.submit(VM, target))
        else:
            jobs.append(api.submit(target, intent))
    with Running(api, arm):
        done = api.wait_all(jobs, timeout=60)
    assert [j.id for j in done] == [j.id for j in jobs]
    assert [j.spec.intent["kind"] for j in done] == [
        "put",
        "tags",
        "tags",
        "merge",
        "resize",
        "action",
        "action",
        "delete",
    ]
    assert all(j.outcome in DONE_OK for j in done), [(j.outcome, j.kind, j.reason) for j in done]
    assert all(j.writer == "api-tests" for j in done)
    steps = [e.event for e in api.events(done[-1])]
    assert steps[0] == "claimed"
    assert steps[-1] in ("applied", "already_satisfied")


def test_a_wait_is_woken_by_the_completion_not_a_polling_interval(
    api: Coordinator, arm: EmulatorHandle
) -> None:
    _setup(api, arm)
    job = api.submit(VNET, TagsIntent({"env": "prod"}), writer="alice")
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(api.wait(job, timeout=60)))
    waiter.start()
    time.sleep(0.3)  # the waiter is asleep on the store's changes by now
    assert got == []
    api.run_worker(arm.base_url)
    finished = time.monotonic()
    waiter.join(timeout=60)
    woke_after = time.monotonic() - finished
    assert got[0].outcome is Outcome.APPLIED
    assert got[0].id == job.id
    # A wait that polled at RECHECK_SECONDS would usually sleep on past the completion.
    assert woke_after < RECHECK_SECONDS / 2, woke_after


def test_a_wait_with_no_worker_times_out_saying_the_state(api: Coordinator) -> None:
    job = api.submit(VNET, TagsIntent({"env": "prod"}), writer="alice")
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"still queued after 0\.4 s; is a worker running") as e:
        api.wait(job.id, timeout=0.4)
    took = time.monotonic() - started
    assert 0.4 <= took < 3, took
    assert e.value.job.id == job.id
    assert e.value.timeout == 0.4


def test_asyncio_waits_leave_the_loop_free_and_see_every_completion(
    api: Coordinator, arm: EmulatorHandle
) -> None:
    _setup(api, arm)
    first = api.submit(VNET, TagsIntent({"a": "1"}))
    second = api.submit(RG, TagsIntent({"b": "2"}))

    async def main() -> tuple[list[Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        # Two waits on one coordinator at once: each must see its own completion.
        waits = asyncio.gather(api.wait_async(first, timeout=60), api.wait_async(second.id))
        await asyncio.sleep(0.2)
        with Running(api, arm):
            done = await waits
            both = await api.wait_all_async([second, first], timeout=5)
        beat.cancel()
        assert [j.id for j in both] == [second.id, first.id]
        return done, ticks

    done, ticks = asyncio.run(main())
    assert [j.outcome for j in done] == [Outcome.APPLIED, Outcome.APPLIED]
    assert ticks >= 10  # the event loop ran while the waits slept


def test_asyncio_wait_times_out_and_can_be_cancelled(api: Coordinator) -> None:
    job = api.submit(VNET, TagsIntent({"a": "1"}))

    async def main() -> None:
        with pytest.raises(WaitTimeout, match=r"still queued after 0\.2 s"):
            await api.wait_async(job, timeout=0.2)
        task = asyncio.create_task(api.wait_async(job, timeout=None))
        await asyncio.sleep(0.1)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1

    asyncio.run(main())


def test_bulk_submit_keeps_the_order_given(api: Coordinator) -> None:
    items = [
        Submission(
            VNET if n % 3 else RG,
            TagsIntent({f"k{n}": str(n)}) if n % 2 else MergeIntent({"tags": {"m": str(n)}}),
            writer=f"writer-{n % 4}",
        )
        for n in range(40)
    ]
    jobs = api.submit_many(items)
    assert [j.resource_id for j in jobs] == [i.resource_id for i in items]
    assert [j.writer for j in jobs] == [i.writer for i in items]
    assert [dict(j.spec.intent) for j in jobs] == [i.intent.to_json() for i in items]  # type: ignore[union-attr]
    seqs = [j.seq for j in jobs]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert [j.id for j in api.jobs()] == [j.id for j in jobs]


def test_an_idempotency_key_returns_the_same_job(api: Coordinator) -> None:
    first = api.submit(VNET, TagsIntent({"a": "1"}), idempotency_key="msg-42")
    again = api.submit(VNET, TagsIntent({"a": "1"}), idempotency_key="msg-42")
    assert again.id == first.id
    [in_bulk, fresh] = api.submit_many(
        [
            Submission(VNET, TagsIntent({"a": "1"}), idempotency_key="msg-42"),
            Submission(VNET, TagsIntent({"a": "1"}), idempotency_key="msg-43"),
        ]
    )
    assert in_bulk.id == first.id
    assert fresh.id != first.id
    assert [j.id for j in api.jobs()] == [first.id, fresh.id]


def test_a_baseline_and_stale_policy_reach_the_job(api: Coordinator) -> None:
    read = {"etag": 'W/"e0"', "tags": {"env": "prod"}, **VNET_BODY}
    job = api.submit(VNET, TagsIntent({"owner": "media"}), baseline=read, on_stale="drop")
    assert job.spec.baseline_etag == 'W/"e0"'
    assert job.spec.baseline == read
    assert job.spec.on_stale == "drop"
    assert api.get(job.id) == job
