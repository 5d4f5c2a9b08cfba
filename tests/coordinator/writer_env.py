"""What the write-loop tests share: a served emulator, a real store and one ManualClock, with
the calls a test makes as a setup writer (``put``, ``get``, ``settle``) and as armguard's user
(``submit``, ``run``); and the resources most scenarios start from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.client import ArmClient, ArmResponse, StaticIdentityCredential
from armguard.clock import ManualClock
from armguard.coordinator.intents import Intent
from armguard.coordinator.model import Job
from armguard.coordinator.sql_store import SqlStore
from armguard.coordinator.submit import submit
from armguard.coordinator.worker import Worker, WorkerSettings
from armguard.testing import DEFAULT_SUBSCRIPTION, EmulatorHandle

SUB = f"/subscriptions/{DEFAULT_SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
SUBNET = f"{VNET}/subnets/app"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/media1"
NET_API = "2024-05-01"


@dataclass
class Env:
    arm: EmulatorHandle
    clock: ManualClock
    db: Any
    store: SqlStore
    setup: ArmClient

    def client(self, who: str) -> ArmClient:
        return ArmClient(StaticIdentityCredential(who), endpoint=self.arm.base_url)

    def worker(self, **settings: Any) -> Worker:
        settings.setdefault("lease_ttl", 3600.0)
        return Worker(
            lambda: self.db.open(self.clock),
            self.client,
            self.clock,
            settings=WorkerSettings(**settings),
        )

    def run(self, **settings: Any) -> Worker:
        worker = self.worker(**settings)
        worker.run_until_idle()
        return worker

    def put(self, rid: str, body: dict[str, Any], api: str = NET_API, who: str = "setup") -> Any:
        response = self.client(who).request("PUT", rid, api_version=api, body=body)
        assert response.status in (200, 201, 202), response.text
        return response

    def settle(self) -> None:
        """Let every running emulator operation finish."""
        self.clock.advance(600)

    def get(self, rid: str, api: str = NET_API) -> dict[str, Any]:
        response = self.setup.request("GET", rid, api_version=api)
        assert response.status == 200, response.text
        body: dict[str, Any] = response.body
        return body

    def submit(self, rid: str, intent: Intent, who: str = "alice", **kw: Any) -> Job:
        return submit(self.store, rid, intent, who, **kw)

    def job(self, job: Job) -> Job:
        found = self.store.get(job.id)
        assert found is not None
        return found

    def events(self, job: Job) -> list[str]:
        return [e.event for e in self.store.events(job.id)]

    def activity(self, caller: str | None = None) -> list[dict[str, Any]]:
        events = self.arm.core.audit.query(
            DEFAULT_SUBSCRIPTION, "eventTimestamp ge '2000-01-01T00:00:00Z'", None
        )
        # The log answers newest first, ties newest-recorded first: reversed, it is the order
        # the emulator recorded the events in.
        return [e for e in reversed(events) if caller is None or e.get("caller") == caller]

    def writes_by(self, caller: str) -> list[str]:
        """Operation names of the started writes ``caller`` made, oldest first."""
        return [
            e["operationName"]["value"]
            for e in self.activity(caller)
            if e["status"]["value"] == "Started"
        ]


def make_vnet(env: Env, tags: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
    }
    if tags:
        body["tags"] = tags
    env.put(VNET, body)
    env.settle()
    return env.get(VNET)


def storm_without_end(env: Env) -> None:
    """Every PUT to the VNet answers 503 from now on: a storm no retry budget outlasts."""
    env.arm.core.faults.add_rule(
        {
            "match": {"method": "PUT", "idPattern": VNET},
            "effect": {"status": 503, "code": "ServiceUnavailable", "message": "busy"},
        }
    )


def make_vm(env: Env) -> dict[str, Any]:
    env.put(
        VM,
        {
            "location": "eastus",
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_B1s"},
                "storageProfile": {"imageReference": {"offer": "ubuntu"}},
                "osProfile": {"computerName": "vm1", "adminUsername": "azureuser"},
            },
        },
        api="2024-07-01",
    )
    env.settle()
    return env.get(VM, "2024-07-01")


Step = Callable[[], None]


@dataclass
class Interleaved:
    """armguard's ARM client, with another writer's ``step`` run just before the calls that
    ``when(method, path, history)`` picks (``history``: the (method, path, status) sent so
    far), at most ``times`` times."""

    inner: ArmClient
    when: Callable[[str, str, list[tuple[str, str, int]]], bool]
    step: Step
    times: int = 1
    history: list[tuple[str, str, int]] = field(default_factory=list)

    def request(self, method: str, path: str, **kw: Any) -> ArmResponse:
        if self.times > 0 and self.when(method, path, self.history):
            self.times -= 1
            self.step()
        response = self.inner.request(method, path, **kw)
        self.history.append((method, path, response.status))
        return response


def run_with(env: Env, client: Interleaved, **settings: Any) -> Worker:
    settings.setdefault("lease_ttl", 3600.0)
    worker = Worker(
        lambda: env.db.open(env.clock),
        lambda who: client,
        env.clock,
        settings=WorkerSettings(**settings),
    )
    worker.run_until_idle()
    return worker


def alice(env: Env) -> ArmClient:
    return ArmClient(StaticIdentityCredential("alice"), endpoint=env.arm.base_url)
