"""kill -9 of a worker mid-batch: another takes over after the TTL, nothing lost, nothing
applied twice, on both stores. The killed worker is a real ``armguard worker`` subprocess; the emulator holds
its write in flight (an injected latency) so the kill lands between "sent" and "answered"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import SystemClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import JobState, Outcome
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
VNET2 = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet2"
# Operations end at once; only the injected latency holds a request.
FAST = {
    "Microsoft.Network/virtualNetworks": {
        "durations": {"create": 0.0, "update": 0.0, "delete": 0.0, "default": 0.0}
    }
}


def _until(predicate: object, timeout: float, what: str) -> None:
    """Poll something observable in another process; real time is the only clock it shares."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_mid_batch_takeover_loses_nothing_and_applies_once(db: Any) -> None:
    clock = SystemClock()
    with emulator(clock=clock, type_settings=FAST) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        for vnet in (VNET, VNET2):
            body = {
                "location": "eastus",
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
            }
            assert setup.request("PUT", vnet, api_version="2024-05-01", body=body).ok
        store = db.open(clock)
        first = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
        second = submit(store, VNET, TagsIntent({"b": "2"}), "alice")
        other = submit(store, VNET2, TagsIntent({"c": "3"}), "alice")
        # Hold the first PUT to vnet1 for 4 s before the emulator answers it.
        arm.core.faults.add_rule(
            {
                "match": {"method": "PUT", "idPattern": VNET},
                "effect": {"latency": 4},
                "schedule": {"firstN": 1},
            }
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "armguard.cli.main",
                "worker",
                "--store",
                db.url(),
                "--endpoint",
                arm.base_url,
                "--concurrency",
                "1",
                "--lease-ttl",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Its write event is recorded just before the PUT goes out: kill it only once the
            # emulator holds the PUT (the latency fault is applied on arrival), or the write
            # counted below may never have been sent.
            _until(
                lambda: (
                    any(e.event == "write" for e in store.events(first.id))
                    and bool(arm.core.faults.applied())
                ),
                30,
                "the subprocess worker's write to reach the emulator",
            )
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert store.get(first.id).state is JobState.RUNNING  # type: ignore[union-attr]

        worker = Worker(
            lambda: db.open(clock),
            lambda who: ArmClient(StaticIdentityCredential(who), endpoint=arm.base_url),
            clock,
            # Only the killed worker's 2 s TTL decides when the takeover happens; the survivor
            # gets a long one so a slow machine cannot make it lose its own lease mid-write.
            settings=WorkerSettings(concurrency=2, lease_ttl=60.0),
        )
        worker.run_until_idle()

        jobs = {j.id: j for j in store.jobs()}
        assert all(j.state is JobState.DONE for j in jobs.values())
        for job in (first, second, other):
            assert jobs[job.id].outcome in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED)
        claims = [e.fence for e in store.events(first.id) if e.event == "claimed"]
        # Claimed by the killed worker, then once by the takeover.
        assert len(claims) == 2
        assert claims[0] < claims[1]
        assert setup.request("GET", VNET, api_version="2024-05-01").body["tags"] == {
            "a": "1",
            "b": "2",
        }

        def vnet_events() -> list[dict[str, object]]:
            found = arm.core.audit.query(
                DEFAULT_SUBSCRIPTION,
                f"eventTimestamp ge '2000-01-01T00:00:00Z' and resourceUri eq '{VNET}'",
                None,
            )
            return [e for e in found if e["caller"] == "alice"]

        sent = [e for e in store.events(first.id) if e.event == "write"]

        def all_answered() -> bool:
            started = [e for e in vnet_events() if e["status"]["value"] == "Started"]  # type: ignore[index]
            return len(started) == len(sent)

        # The killed worker's held PUT is still in the emulator: wait until ARM has answered
        # every write any worker sent, then count what took effect.
        _until(all_answered, 15, "every sent write to be answered")
        statuses = [
            (e["status"]["value"], e["properties"].get("statusCode"))  # type: ignore[index, union-attr]
            for e in vnet_events()
        ]
        assert [s for s in statuses if s[0] == "Succeeded"] == [("Succeeded", "OK")]
        if len(sent) == 2:
            # The takeover wrote first; the dead worker's replay met the ETag guard.
            assert ("Failed", "PreconditionFailed") in statuses
