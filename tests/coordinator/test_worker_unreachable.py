"""A worker against an ARM endpoint that gives no answer at all ends in bounded time, says so
as it happens, and recovers when ARM answers again."""

from __future__ import annotations

import socket

from store_db import StoreDb
from writer_env import RG

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import Outcome
from armguard.coordinator.reachability import ReachabilityChange
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import emulator


def dead_endpoint() -> str:
    """A loopback port nobody listens on: every connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def nsg(n: int) -> str:
    return f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg{n}"


def test_a_silent_endpoint_fails_every_job_within_the_outage_limit(
    db: StoreDb, clock: ManualClock
) -> None:
    endpoint = dead_endpoint()
    store = db.open(clock)
    jobs = [submit(store, nsg(n), TagsIntent({"k": "v"}), "alice") for n in range(6)]
    changes: list[ReachabilityChange] = []
    worker = Worker(
        lambda: db.open(clock),
        lambda who: ArmClient(StaticIdentityCredential(who), endpoint=endpoint, timeout=5),
        clock,
        settings=WorkerSettings(arm_outage=30.0, lease_ttl=3600.0, budget_floor=1000),
        on_arm=changes.append,
    )
    started = clock.monotonic()
    worker.run_until_idle()
    # Waits are capped at what is left of the limit, so the give-up is on time.
    assert clock.monotonic() - started <= 31.0
    assert [c.state for c in changes] == ["silent", "gave_up"]
    assert "refused" in changes[0].why.lower() or "connect" in changes[0].why.lower()
    for job in jobs:
        done = store.get(job.id)
        assert done is not None
        assert (done.outcome, done.kind) == (Outcome.FAILED, "transient")
    # Once the limit has passed, the later jobs fail at their first silence: no more waiting.
    late = store.get(jobs[-1].id)
    assert late is not None
    assert "gave no answer" in (late.reason or "")


def test_an_endpoint_that_answers_again_is_reported_and_used(
    db: StoreDb, clock: ManualClock
) -> None:
    with emulator(clock=clock) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        assert setup.request(
            "PUT", nsg(1), api_version="2024-05-01", body={"location": "eastus"}
        ).status in (200, 201)
        clock.advance(600)
        dead = dead_endpoint()
        calls = {"n": 0}

        def client(who: str) -> ArmClient:
            # The first client built points at nothing; later batches reach the emulator.
            calls["n"] += 1
            url = dead if calls["n"] == 1 else arm.base_url
            return ArmClient(StaticIdentityCredential(who), endpoint=url, timeout=5)

        store = db.open(clock)
        first = submit(store, nsg(1), TagsIntent({"a": "1"}), "alice")
        changes: list[ReachabilityChange] = []
        worker = Worker(
            lambda: db.open(clock),
            client,
            clock,
            settings=WorkerSettings(arm_outage=5.0, lease_ttl=3600.0, budget_floor=1000),
            on_arm=changes.append,
        )
        worker.run_until_idle()
        assert store.get(first.id).outcome is Outcome.FAILED  # type: ignore[union-attr]
        second = submit(store, nsg(1), TagsIntent({"b": "2"}), "bob")
        worker.run_until_idle()
        assert store.get(second.id).outcome is Outcome.APPLIED  # type: ignore[union-attr]
        assert [c.state for c in changes] == ["silent", "gave_up", "answering"]
