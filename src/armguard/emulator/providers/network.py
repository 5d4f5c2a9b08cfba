"""``Microsoft.Network``: weak GUID ETags, writes serialised through the top-level resource,
VNets that own their subnets, and subnets that cannot go while a NIC uses them.

A VNet PUT replaces the whole subnet list: subnets the body omits are deleted, and an in-use
one makes the PUT fail with ``InUseSubnetCannotBeDeleted``. A subnet PUT shows up in its VNet's
``properties.subnets`` because the VNet's view is built from its subnet children.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from armguard.arm.errors import ArmError, ErrorDetail
from armguard.arm.ids import ResourceId
from armguard.emulator.idmemo import type_key
from armguard.emulator.model import Operation, OpKind, OpStatus, Resource
from armguard.emulator.providers.base import Provider, reference_ids
from armguard.emulator.providers.network_defaults import apply_network_defaults
from armguard.emulator.providers.settings import TypeSettings
from armguard.emulator.request import Call
from armguard.emulator.shapes import BOOL, ENVELOPE, REF, STRING, Arr, Named, Obj

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = [
    "NetworkInterfaceProvider",
    "NetworkProvider",
    "SubnetProvider",
    "VirtualNetworkProvider",
]

JSON = dict[str, Any]
SUBNET_TYPE = "microsoft.network/virtualnetworks/subnets"
NIC_TYPE = "microsoft.network/networkinterfaces"

# The references every network type may carry (holds follow them).
_REFS = {"networkSecurityGroup": REF, "routeTable": REF}
_SUBNET_PROPERTIES = Obj({**_REFS, "addressPrefix": STRING, "addressPrefixes": Arr(STRING)})
_IP_CONFIGURATION = Obj(
    {
        "name": STRING,
        "properties": Obj(
            {
                "subnet": REF,
                "publicIPAddress": REF,
                "privateIPAddress": STRING,
                "privateIPAllocationMethod": STRING,
                "primary": BOOL,
            }
        ),
    }
)


class NetworkProvider(Provider):
    settings = TypeSettings(
        etag="weak-guid",
        serialize_top_level=True,
        async_patch=False,
        durations={"create": 5.0, "update": 4.0, "delete": 6.0, "default": 5.0},
        op_namespace="Microsoft.Network",
    )
    shape = Obj({**ENVELOPE, "properties": Obj(_REFS)})
    location_required = True

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: JSON,
        method: str,
        prepared: object | None = None,
    ) -> JSON:
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        guid = existing.properties.get("resourceGuid") if existing else None
        if rid.levels and len(rid.levels[-1].pairs) == 1:
            new["properties"]["resourceGuid"] = guid or core.new_guid()
        apply_network_defaults(core, rid, new, existing.properties if existing else None)
        return new

    def references(self, body: JSON) -> set[ResourceId]:
        props = body.get("properties") or {}
        return reference_ids(props.get("networkSecurityGroup"), props.get("routeTable"))

    def validate(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        new_body: JSON,
        method: str,
    ) -> None:
        missing = missing_reference(core, self.references(new_body))
        if missing is not None:
            # Read without the other group's lock: a snapshot, like the in-use checks.
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {missing.format()} referenced by resource {rid.format()} was not "
                "found. Please make sure that the referenced resource exists, and that both "
                "resources are in the same region.",
                details=[ErrorDetail("NotFound", f"Resource {missing.format()} not found.")],
            )


def missing_reference(core: Emulator, refs: set[ResourceId]) -> ResourceId | None:
    """The first referenced resource that does not exist (sorted, so the answer is stable)."""
    for ref in sorted(refs, key=lambda r: r.key):
        if core.provider_for(ref).lookup(core, ref) is None:
            return ref
    return None


def _nic_users(core: Emulator, subnet: ResourceId) -> list[str]:
    """ipConfiguration ids of NICs attached to ``subnet`` (read without other buckets' locks:
    a snapshot is enough to refuse a delete)."""
    users: list[str] = []
    for bucket in core.store.buckets():
        for res in list(bucket.resources.values()):
            if res.id.type.lower() != NIC_TYPE:
                continue
            for conf in res.properties.get("ipConfigurations") or []:
                if not isinstance(conf, Mapping):
                    continue
                ref = (conf.get("properties") or {}).get("subnet") or {}
                if isinstance(ref, Mapping) and str(ref.get("id", "")).lower() == subnet.key:
                    users.append(f"{res.id.format()}/ipConfigurations/{conf.get('name', '')}")
    return users


def in_use_error(core: Emulator, subnet: ResourceId) -> ArmError | None:
    users = _nic_users(core, subnet)
    if not users:
        return None
    return ArmError(
        400,
        "InUseSubnetCannotBeDeleted",
        f"Subnet {subnet.name} is in use by {users[0]} and cannot be deleted. In order to "
        "delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
    )


def _subnets(core: Emulator, vnet: ResourceId) -> list[Resource]:
    prefix = vnet.key + "/subnets/"
    found = [
        r
        for r in core.store.children(vnet)
        if r.id.key.startswith(prefix) and type_key(r.id) == SUBNET_TYPE
    ]
    return sorted(found, key=lambda r: (r.created_at, r.id.key))


class VirtualNetworkProvider(NetworkProvider):
    shape = Obj(
        {
            **ENVELOPE,
            "properties": Obj(
                {
                    **_REFS,
                    "addressSpace": Obj({"addressPrefixes": Arr(STRING)}),
                    "subnets": Named(
                        Obj({"name": STRING, "properties": _SUBNET_PROPERTIES}), "subnet"
                    ),
                }
            ),
        }
    )

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: JSON,
        method: str,
        prepared: object | None = None,
    ) -> JSON:
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        subnets = new["properties"].get("subnets")
        if method == "PATCH" and "subnets" not in (body.get("properties") or {}):
            subnets = [s.snapshot() for s in _subnets(core, rid)]
        # The shape check made every entry an object with a valid, unique name.
        new["properties"]["subnets"] = subnets or []
        return new

    def references(self, body: JSON) -> set[ResourceId]:
        out = super().references(body)
        for subnet in (body.get("properties") or {}).get("subnets") or []:
            if isinstance(subnet, Mapping):
                props = subnet.get("properties") or {}
                out |= reference_ids(props.get("networkSecurityGroup"), props.get("routeTable"))
        return out

    def validate(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        new_body: JSON,
        method: str,
    ) -> None:
        super().validate(core, call, rid=rid, existing=existing, new_body=new_body, method=method)
        wanted = {str(s["name"]).lower() for s in new_body["properties"]["subnets"]}
        for subnet in _subnets(core, rid):
            if subnet.id.name.lower() not in wanted:
                err = in_use_error(core, subnet.id)
                if err is not None:
                    raise err

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        listed = res.properties.pop("subnets", [])
        keep: set[str] = set()
        state = res.properties.get("provisioningState", "Succeeded")
        for entry in listed:
            sid = res.id.child("subnets", str(entry["name"]))
            keep.add(sid.key)
            child = core.store.get(sid) or Resource(sid, {}, created_at=at)
            props = copy.deepcopy(entry.get("properties") or {})
            props["provisioningState"] = state
            child.id = sid
            child.body = {
                "id": sid.format(),
                "name": sid.name,
                "type": "Microsoft.Network/virtualNetworks/subnets",
                "properties": props,
            }
            child.etag = core.writes.next_etag(self.settings.etag, child.etag)
            child.changed_at = at
            core.store.put(child)
        for subnet in _subnets(core, res.id):
            if subnet.id.key not in keep:
                core.store.remove(subnet.id)

    def on_completed(self, core: Emulator, op: Operation, res: Resource | None) -> None:
        if res is None or op.kind is OpKind.DELETE:
            return
        state = "Succeeded" if op.status is OpStatus.SUCCEEDED else "Failed"
        for subnet in _subnets(core, res.id):
            if subnet.properties.get("provisioningState") in ("Updating", "Creating"):
                subnet.properties["provisioningState"] = state

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        out = res.snapshot()
        out["properties"]["subnets"] = [s.snapshot() for s in _subnets(core, res.id)]
        return out


class SubnetProvider(NetworkProvider):
    shape = Obj({**ENVELOPE, "name": STRING, "properties": _SUBNET_PROPERTIES})

    def after_write(self, core: Emulator, call: Call, res: Resource, at: float) -> None:
        res.body.pop("location", None)
        self._touch_parent(core, res.id, at)

    def validate_delete(self, core: Emulator, call: Call, res: Resource) -> None:
        err = in_use_error(core, res.id)
        if err is not None:
            raise err

    def after_delete(self, core: Emulator, res: Resource, at: float) -> None:
        self._touch_parent(core, res.id, at)

    def _touch_parent(self, core: Emulator, rid: ResourceId, at: float) -> None:
        # A subnet change is a change of its VNet: the VNet's ETag moves with it.
        parent = rid.parent
        vnet = core.store.get(parent) if parent is not None else None
        if vnet is not None:
            vnet.etag = core.writes.next_etag(self.settings.etag, vnet.etag)
            vnet.changed_at = at


class NetworkInterfaceProvider(NetworkProvider):
    shape = Obj(
        {
            **ENVELOPE,
            "properties": Obj(
                {**_REFS, "ipConfigurations": Named(_IP_CONFIGURATION, "ipConfiguration")}
            ),
        }
    )

    def build(
        self,
        core: Emulator,
        call: Call,
        *,
        rid: ResourceId,
        existing: Resource | None,
        body: JSON,
        method: str,
        prepared: object | None = None,
    ) -> JSON:
        new = super().build(
            core, call, rid=rid, existing=existing, body=body, method=method, prepared=prepared
        )
        for conf in new["properties"].get("ipConfigurations") or []:
            conf["id"] = f"{rid.format()}/ipConfigurations/{conf['name']}"
            conf["type"] = "Microsoft.Network/networkInterfaces/ipConfigurations"
        return new

    def references(self, body: JSON) -> set[ResourceId]:
        props = body.get("properties") or {}
        out = reference_ids(props.get("networkSecurityGroup"))
        for conf in props.get("ipConfigurations") or []:
            if isinstance(conf, Mapping):
                cprops = conf.get("properties") or {}
                out |= reference_ids(cprops.get("subnet"), cprops.get("publicIPAddress"))
        return out

    def view(self, core: Emulator, res: Resource, query: Mapping[str, str]) -> JSON:
        out = res.snapshot()
        # ipConfigurations carry the NIC's own ETag.
        for conf in out["properties"].get("ipConfigurations") or []:
            if isinstance(conf, dict) and res.etag:
                conf["etag"] = res.etag
        return out
