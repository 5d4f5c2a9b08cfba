"""The resources a chaos run writes to, and how they are created before the load starts.

Four types, each chosen for the refusals it brings: storage accounts (ETags, hot tags), network
security groups (deleted and re-created), virtual networks (long updates that hold the
resource), virtual machines (resizes that need a deallocation, power actions).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from armguard.arm.client import ArmClient
from armguard.arm.ids import parse_resource_id
from armguard.coordinator.resource_types import api_version_for

__all__ = ["SUBSCRIPTION", "Resource", "World", "api_of", "build_world", "create_world"]

SUBSCRIPTION = "00000000-0000-0000-0000-00000000c4a0"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/chaos"
SIZES = ("Standard_D2s_v5", "Standard_D4s_v5", "Standard_E2s_v5")

_PROVIDERS = {
    "storage": "Microsoft.Storage/storageAccounts",
    "nsg": "Microsoft.Network/networkSecurityGroups",
    "vnet": "Microsoft.Network/virtualNetworks",
    "vm": "Microsoft.Compute/virtualMachines",
}


@dataclass(frozen=True)
class Resource:
    kind: str  # storage | nsg | vnet | vm
    id: str
    body: dict[str, Any]
    """The body it is created with (and an NSG is re-created with, plus a generation tag)."""


@dataclass(frozen=True)
class World:
    resources: tuple[Resource, ...]

    def of(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]


def api_of(resource_id: str) -> str:
    return api_version_for(parse_resource_id(resource_id), None)


def _body(kind: str, n: int) -> dict[str, Any]:
    if kind == "storage":
        return {
            "location": "eastus",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "tags": {"env": "chaos"},
        }
    if kind == "nsg":
        return {"location": "eastus", "tags": {"env": "chaos"}}
    if kind == "vnet":
        return {
            "location": "eastus",
            "tags": {"env": "chaos"},
            "properties": {"addressSpace": {"addressPrefixes": [f"10.{n}.0.0/16"]}},
        }
    return {
        "location": "eastus",
        "tags": {"env": "chaos"},
        "properties": {"hardwareProfile": {"vmSize": SIZES[0]}},
    }


def build_world(resources: int) -> World:
    """At least ``resources`` resources (never fewer than 8), split across the four types."""
    total = max(8, resources)
    counts = {"storage": total * 2 // 5, "nsg": total // 5, "vnet": total // 5}
    counts["vm"] = total - sum(counts.values())
    out: list[Resource] = []
    for kind, count in counts.items():
        for n in range(count):
            rid = f"{GROUP}/providers/{_PROVIDERS[kind]}/chaos{kind}{n:03d}"
            out.append(Resource(kind, rid, _body(kind, n)))
    return World(tuple(out))


def create_world(client: ArmClient, world: World, timeout: float = 120.0) -> None:
    """Create the group and every resource, and wait until each is Succeeded."""
    response = client.request("PUT", GROUP, api_version="2024-03-01", body={"location": "eastus"})
    if not response.ok:
        raise RuntimeError(f"cannot create {GROUP}: {response.status} {response.text[:300]}")
    for res in world.resources:
        response = client.request("PUT", res.id, api_version=api_of(res.id), body=res.body)
        if not response.ok:
            raise RuntimeError(f"cannot create {res.id}: {response.status} {response.text[:300]}")
    deadline = time.monotonic() + timeout
    for res in world.resources:
        while True:
            got = client.request("GET", res.id, api_version=api_of(res.id))
            state = ((got.body or {}).get("properties") or {}).get("provisioningState")
            if got.ok and state in (None, "Succeeded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{res.id} did not finish creating ({got.status} {state})")
            time.sleep(0.05)
