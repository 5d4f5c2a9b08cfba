"""The workloads: seed resources, every writer's intents in order, and each one's ideal schedule.

Each intent changes one *field* (a tag, a subnet's NSG, a VM's size) to one value. Fields belong to
one writer, except in ``stale-queue`` where a setup writer has already changed a field the
queued intents' stale bodies still hold the old value of. Tag workloads stay within ARM's 50
tags per resource: one tag per writer (plus ``advanced`` in ``stale-queue``).

The ideal serialised schedule (emulated seconds; × time scale = real seconds) assumes a
clairvoyant coordinator: every intent known at t=0, zero client, network and store overhead,
every coalescable intent on a resource folded into one write, writes that share a lock key
(the resource, its top-level parent, a referenced resource) strictly one after another, writes
with no key in common fully in parallel (unbounded concurrency), each write lasting exactly the
emulator's configured duration for that operation, and only the transitions a write cannot do
without (a running VM's deallocate and start around a resize). Real overheads are not in it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from armguard.coordinator.intents import Intent, MergeIntent, ResizeIntent, TagsIntent
from armguard.emulator.providers.compute import VirtualMachineProvider
from armguard.emulator.providers.network import SubnetProvider, VirtualNetworkProvider
from armguard.emulator.providers.storage import StorageAccountProvider
from armguard.emulator.providers.tags import MAX_TAGS, TagsProvider

__all__ = [
    "WORKLOADS",
    "IdealSchedule",
    "IdealWrite",
    "WorkIntent",
    "Workload",
    "build_workload",
]

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bench"
PROVIDERS = f"{RG}/providers"
NETWORK_API = "2024-05-01"
STORAGE_API = "2023-05-01"
COMPUTE_API = "2024-07-01"
VM_SIZES = ("Standard_D4s_v5", "Standard_D8s_v5", "Standard_E4s_v5", "Standard_E8s_v5")
START_SIZE = "Standard_D2s_v5"
JSON = dict[str, Any]


@dataclass(frozen=True)
class WorkIntent:
    """One writer's wish: set ``kind``/``key`` on ``resource_id`` to ``value``."""

    writer: str
    index: int
    """Position in the writer's sequence: a later index on the same field supersedes."""
    resource_id: str
    api_version: str
    kind: str
    """``tag`` (tags[key]), ``nsg`` (a subnet's NSG id) or ``size`` (a VM's vmSize)."""
    key: str
    value: str
    baseline_etag: str | None = None
    baseline_body: Mapping[str, Any] | None = None
    """Set for queued intents prepared from an earlier read (``stale-queue``)."""

    @property
    def field(self) -> str:
        return f"{self.resource_id.lower()}#{self.kind}:{self.key}"

    def apply(self, body: Mapping[str, Any]) -> JSON:
        out: JSON = copy.deepcopy(dict(body))
        if self.kind == "tag":
            out["tags"] = {**(out.get("tags") or {}), self.key: self.value}
            return out
        props = out.setdefault("properties", {})
        if self.kind == "nsg":
            props["networkSecurityGroup"] = {"id": self.value}
        elif self.kind == "size":
            props.setdefault("hardwareProfile", {})["vmSize"] = self.value
        else:
            raise ValueError(f"unknown intent kind {self.kind!r}")
        return out

    def read(self, live: Mapping[str, Any] | None) -> str | None:
        """This intent's field in a live body (None: absent)."""
        if live is None:
            return None
        props = live.get("properties") or {}
        if self.kind == "tag":
            value = (live.get("tags") or {}).get(self.key)
        elif self.kind == "nsg":
            value = (props.get("networkSecurityGroup") or {}).get("id")
        else:
            value = (props.get("hardwareProfile") or {}).get("vmSize")
        return value if isinstance(value, str) else None

    def present_in(self, live: Mapping[str, Any] | None) -> bool:
        seen = self.read(live)
        if seen is None:
            return False
        # ARM compares resource ids case-insensitively; so does this check.
        return seen.lower() == self.value.lower() if self.kind == "nsg" else seen == self.value

    def to_armguard(self) -> Intent:
        if self.kind == "tag":
            return TagsIntent({self.key: self.value})
        if self.kind == "nsg":
            return MergeIntent({"properties": {"networkSecurityGroup": {"id": self.value}}})
        return ResizeIntent(self.value)


@dataclass(frozen=True)
class IdealWrite:
    lock_key: str
    operation: str
    seconds: float
    """Emulated seconds, the emulator's configured duration for this operation."""


@dataclass(frozen=True)
class IdealSchedule:
    writes: tuple[IdealWrite, ...]
    note: str

    @property
    def seconds(self) -> float:
        """Emulated seconds: the busiest lock key's writes back to back."""
        per_key: dict[str, float] = {}
        for w in self.writes:
            per_key[w.lock_key] = per_key.get(w.lock_key, 0.0) + w.seconds
        return max(per_key.values(), default=0.0)

    def to_json(self, time_scale: float) -> JSON:
        return {
            "writes": len(self.writes),
            "emulatedSeconds": round(self.seconds, 3),
            "seconds": round(self.seconds * time_scale, 4),
            "assumes": self.note,
        }


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    resources: tuple[Mapping[str, Any], ...]
    """Emulator seed data (``resources:`` of ``--config``), created already Succeeded."""
    writers: tuple[tuple[WorkIntent, ...], ...]
    ideal: IdealSchedule
    stale_setup: WorkIntent | None = None
    """Written (and finished) before the run; the queued intents carry the ETag and body read
    just before it, so they are stale from the start."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def intents(self) -> list[WorkIntent]:
        return [i for w in self.writers for i in w]

    def with_baseline(self, etag: str | None, body: Mapping[str, Any]) -> Workload:
        writers = tuple(
            tuple(replace(i, baseline_etag=etag, baseline_body=body) for i in w)
            for w in self.writers
        )
        return replace(self, writers=writers)


def _rg() -> JSON:
    return {"id": RG, "body": {"location": "eastus"}}


def _vnet(name: str, subnets: int = 1) -> JSON:
    return {
        "id": f"{PROVIDERS}/Microsoft.Network/virtualNetworks/{name}",
        "body": {
            "location": "eastus",
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/8"]},
                "subnets": [
                    {
                        "name": f"s{n}",
                        "properties": {"addressPrefix": f"10.{n // 256}.{n % 256}.0/24"},
                    }
                    for n in range(subnets)
                ],
            },
        },
    }


def _writer(n: int) -> str:
    return f"writer-{n:03d}"


def _tag_writers(
    rid: str, api: str, writers: int, per_writer: int
) -> tuple[tuple[WorkIntent, ...], ...]:
    return tuple(
        tuple(
            WorkIntent(_writer(w), k, rid, api, "tag", f"w{w:03d}", f"v{k}")
            for k in range(per_writer)
        )
        for w in range(writers)
    )


def _hot_tag(writers: int, per_writer: int) -> Workload:
    rid = f"{PROVIDERS}/Microsoft.Network/virtualNetworks/hot"
    update = VirtualNetworkProvider.settings.duration("update")
    return Workload(
        "hot-tag",
        f"{writers} writers × {per_writer} intents, each writer setting its own tag on one VNet"
        " (weak-GUID ETags, 409 AnotherOperationInProgress while an update runs)",
        (_rg(), _vnet("hot")),
        _tag_writers(rid, NETWORK_API, writers, per_writer),
        IdealSchedule(
            (IdealWrite(rid.lower(), "virtualNetworks update", update),),
            "all tag intents on the VNet fold into one PUT",
        ),
    )


def _hot_tag_noetag(writers: int, per_writer: int) -> Workload:
    rid = f"{PROVIDERS}/Microsoft.Storage/storageAccounts/hotsa"
    tags_update = TagsProvider.settings.duration("update")
    return Workload(
        "hot-tag-noetag",
        f"{writers} writers × {per_writer} intents, each writer setting its own tag on one storage"
        " account (no ETag: If-Match is ignored; 409 StorageAccountOperationInProgress)",
        (
            _rg(),
            {
                "id": rid,
                "body": {
                    "location": "eastus",
                    "kind": "StorageV2",
                    "sku": {"name": "Standard_LRS"},
                },
            },
        ),
        _tag_writers(rid, STORAGE_API, writers, per_writer),
        IdealSchedule(
            (IdealWrite(rid.lower(), "tags/default Merge", tags_update),),
            "all tag intents fold into one tags-API Merge (the cheapest write that sets tags;"
            f" a storage account PUT lasts {StorageAccountProvider.settings.duration('update'):g} s)",
        ),
    )


def _subnets(writers: int, per_writer: int) -> Workload:
    vnet = f"{PROVIDERS}/Microsoft.Network/virtualNetworks/net"
    nsgs = [f"{PROVIDERS}/Microsoft.Network/networkSecurityGroups/nsg{n}" for n in range(4)]
    update = SubnetProvider.settings.duration("update")
    return Workload(
        "subnets",
        f"{writers} writers × {per_writer} intents, each writer moving its own subnet of one VNet"
        " between 4 NSGs (subnet writes serialise on the VNet and hold the NSG they reference)",
        (
            _rg(),
            *({"id": nsg, "body": {"location": "eastus", "properties": {}}} for nsg in nsgs),
            _vnet("net", writers),
        ),
        tuple(
            tuple(
                WorkIntent(
                    _writer(w), k, f"{vnet}/subnets/s{w}", NETWORK_API, "nsg", "", nsgs[(w + k) % 4]
                )
                for k in range(per_writer)
            )
            for w in range(writers)
        ),
        IdealSchedule(
            tuple(IdealWrite(vnet.lower(), "subnets update", update) for _ in range(writers)),
            "one PUT per subnet (its intents folded), all serialised through the VNet",
        ),
    )


def _vm_resize(writers: int, per_writer: int) -> Workload:
    vms = [f"{PROVIDERS}/Microsoft.Compute/virtualMachines/vm{w:03d}" for w in range(writers)]
    d = VirtualMachineProvider.settings.duration
    return Workload(
        "vm-resize",
        f"{writers} writers × {per_writer} intents, each writer resizing its own running VM"
        " (a running VM refuses the resize: 409 OperationNotAllowed, deallocate first)",
        (
            _rg(),
            *(
                {
                    "id": vm,
                    "body": {
                        "location": "eastus",
                        "properties": {"hardwareProfile": {"vmSize": START_SIZE}},
                    },
                    "powerState": "running",
                }
                for vm in vms
            ),
        ),
        tuple(
            tuple(
                WorkIntent(
                    _writer(w), k, vms[w], COMPUTE_API, "size", "", VM_SIZES[k % len(VM_SIZES)]
                )
                for k in range(per_writer)
            )
            for w in range(writers)
        ),
        IdealSchedule(
            tuple(
                IdealWrite(vm.lower(), op, d(op))
                for vm in vms
                for op in ("deallocate", "update", "start")
            ),
            "per VM: deallocate, one resize PUT (its intents folded), start; VMs in parallel",
        ),
        extra={"checkRunning": True},
    )


def _stale_queue(writers: int, per_writer: int) -> Workload:
    rid = f"{PROVIDERS}/Microsoft.Network/virtualNetworks/stale"
    update = VirtualNetworkProvider.settings.duration("update")
    return Workload(
        "stale-queue",
        f"{writers} writers × {per_writer} queued tag intents on one VNet, all prepared from a read"
        " taken before another writer set tag 'advanced' (their ETag and body are stale)",
        (_rg(), _vnet("stale")),
        _tag_writers(rid, NETWORK_API, writers, per_writer),
        IdealSchedule(
            (IdealWrite(rid.lower(), "virtualNetworks update", update),),
            "all queued intents rebased on the live VNet and folded into one PUT",
        ),
        stale_setup=WorkIntent("bench-advancer", 0, rid, NETWORK_API, "tag", "advanced", "yes"),
    )


WORKLOADS: Mapping[str, Callable[[int, int], Workload]] = {
    "hot-tag": _hot_tag,
    "hot-tag-noetag": _hot_tag_noetag,
    "subnets": _subnets,
    "vm-resize": _vm_resize,
    "stale-queue": _stale_queue,
}
TAG_WORKLOADS = frozenset({"hot-tag", "hot-tag-noetag", "stale-queue"})
MAX_TAG_WRITERS = MAX_TAGS - 1  # stale-queue's 'advanced' tag takes one


def build_workload(name: str, writers: int, per_writer: int) -> Workload:
    return WORKLOADS[name](writers, per_writer)


def check_sizes(names: Sequence[str], writers: int) -> str | None:
    """Why this many writers cannot run these workloads on real ARM, or None."""
    if writers > MAX_TAG_WRITERS and TAG_WORKLOADS.intersection(names):
        return (
            f"--writers {writers}: each writer owns one tag and ARM allows {MAX_TAGS} tags per"
            f" resource; use at most {MAX_TAG_WRITERS} with the tag workloads"
        )
    if writers > 256 * 256:
        return f"--writers {writers}: the subnets workload has room for {256 * 256} subnets"
    return None
