"""Every ARM call a lease makes names its fencing token in the request id, and the Activity
Log keeps it: what lets the chaos checker order writes by fence."""

from __future__ import annotations

from pathlib import Path

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.fencing import client_request_id, fence_of
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"


def test_a_request_id_carries_its_fence_and_stays_a_guid() -> None:
    rid = client_request_id(0xABCDEF)
    assert fence_of(rid) == 0xABCDEF
    parts = rid.split("-")
    assert [len(p) for p in parts] == [8, 4, 4, 4, 12]
    assert client_request_id(7) != client_request_id(7)  # unique per call
    assert fence_of("36f86e40-f0ac-11f1-a069-02fc00000001") is None  # azure-core's own ids
    assert fence_of(None) is None


def test_the_activity_log_names_the_fence_of_each_lease_that_wrote(tmp_path: Path) -> None:
    clock = ManualClock()
    with emulator(clock=clock, auto_advance=True) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "x"}).ok
        body = {
            "location": "x",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        assert setup.request("PUT", VNET, api_version="2024-05-01", body=body).ok
        arm.advance(60)
        store = SqliteStore(str(tmp_path / "jobs.db"), clock=clock)
        jobs = [submit(store, VNET, TagsIntent({"n": str(n)}), "alice") for n in range(2)]
        worker = Worker(
            lambda: SqliteStore(str(tmp_path / "jobs.db"), clock=clock),
            lambda who: ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url),
            clock,
            settings=WorkerSettings(concurrency=1, max_batch=1, linger=0.0),
        )
        worker.run_until_idle()
        claimed = {e.fence for j in jobs for e in store.events(j.id) if e.event == "claimed"}
        writes = [
            e
            for e in arm.core.dump()["activityLog"]
            if e["caller"] == "alice" and e["httpRequest"]["method"] != "GET"
        ]
        fences = [fence_of(e["httpRequest"]["clientRequestId"]) for e in writes]
        assert len(claimed) == 2  # one lease per job (max_batch=1)
        assert writes
        assert set(fences) == claimed
        assert fences == sorted(fences)  # later leases write later
        store.close()
