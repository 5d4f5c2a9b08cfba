"""64 concurrent writers, 1,000 intents on a few hot resources, through a served emulator.

The bar: every intent's effect is in the final state *in submission order* (the final tags equal
applying every intent one by one in the store's order), no 409/412 reaches a caller, and
coalescing makes ARM writes per intent well below one.
"""

from __future__ import annotations

import threading
from typing import Any

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.intents import TagsIntent, fold
from armguard.coordinator.metrics import CoordinatorMetrics
from armguard.coordinator.model import JobState, Outcome
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/hot"
VNETS = [f"{RG}/providers/Microsoft.Network/virtualNetworks/hot{n}" for n in range(5)]
WRITERS = 64
INTENTS = 1000
KEYS = 40  # tags per resource stay under ARM's 50


def _intent(n: int) -> tuple[str, TagsIntent, str]:
    resource = VNETS[n % len(VNETS)]
    key = f"k{(n // len(VNETS)) % KEYS}"
    return resource, TagsIntent({key: f"v{n}"}), f"writer-{n % WRITERS}"


def test_64_writers_1000_intents_every_effect_lands_in_order(db: Any, clock: ManualClock) -> None:
    with emulator(clock=clock) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        for vnet in VNETS:
            body = {
                "location": "eastus",
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
            }
            assert setup.request("PUT", vnet, api_version="2024-05-01", body=body).ok
        clock.advance(600)

        clients: dict[str, ArmClient] = {}
        lock = threading.Lock()

        def client_for(writer: str) -> ArmClient:
            with lock:
                if writer not in clients:
                    clients[writer] = ArmClient(
                        StaticIdentityCredential(writer), endpoint=arm.base_url
                    )
                return clients[writer]

        metrics = CoordinatorMetrics()
        worker = Worker(
            lambda: db.open(clock),
            client_for,
            clock,
            settings=WorkerSettings(concurrency=8, lease_ttl=3600.0),
            metrics=metrics,
        )

        # 64 writers submit concurrently while the worker is already running.
        def writer_thread(w: int) -> None:
            store = db.open(clock)
            try:
                for n in range(w, INTENTS, WRITERS):
                    resource, intent, who = _intent(n)
                    submit(store, resource, intent, who, idempotency_key=f"intent-{n}")
            finally:
                store.close()

        runner = threading.Thread(target=worker.run_forever)
        runner.start()
        submitters = [threading.Thread(target=writer_thread, args=(w,)) for w in range(WRITERS)]
        for t in submitters:
            t.start()
        for t in submitters:
            t.join()
        worker.stop()
        runner.join()
        drain = Worker(
            lambda: db.open(clock),
            client_for,
            clock,
            settings=WorkerSettings(concurrency=8, lease_ttl=3600.0),
            metrics=metrics,
        )
        drain.run_until_idle()  # whatever was queued after the first worker stopped

        store = db.open(clock)
        jobs = store.jobs(limit=5000)
        assert len(jobs) == INTENTS
        assert all(j.state is JobState.DONE for j in jobs)
        outcomes = {j.outcome for j in jobs}
        assert outcomes <= {Outcome.APPLIED, Outcome.ALREADY_SATISFIED}, [
            (j.outcome, j.kind, j.reason)
            for j in jobs
            if j.outcome not in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED)
        ][:5]

        # Final state = every intent applied one by one in submission (seq) order.
        by_resource: dict[str, list[TagsIntent]] = {v: [] for v in VNETS}
        for job in sorted(jobs, key=lambda j: j.seq):
            by_resource[job.resource_id].append(TagsIntent(dict(job.spec.intent["set"])))
        for vnet in VNETS:
            live = setup.request("GET", vnet, api_version="2024-05-01").body
            assert live["tags"] == fold(by_resource[vnet], {})["tags"]

        # No 409/412 reached a caller, and ARM saw far fewer writes than intents.
        events = arm.core.audit.query(
            DEFAULT_SUBSCRIPTION, "eventTimestamp ge '2000-01-01T00:00:00Z'", None
        )
        writes = [
            e
            for e in events
            if e["caller"].startswith("writer-") and e["status"]["value"] == "Started"
        ]
        failed = [
            e
            for e in events
            if e["caller"].startswith("writer-") and e["status"]["value"] == "Failed"
        ]
        assert failed == [], [(e["caller"], e["properties"].get("statusMessage")) for e in failed]
        ratio = len(writes) / INTENTS
        assert ratio < 0.25, f"{len(writes)} ARM writes for {INTENTS} intents"
        assert worker.stats.writes + drain.stats.writes == len(writes)
        sample = metrics.registry.get_sample_value(
            "armguard_jobs_total", {"outcome": "applied", "kind": ""}
        )
        assert sample is not None
        assert sample > 0
