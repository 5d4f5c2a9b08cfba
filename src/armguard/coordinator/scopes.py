"""Lock scopes: which lock keys a write must hold so it cannot collide with another.

ARM serialises more than the resource itself: a subnet write holds its VNet, a subnet's NSG
and route-table associations hold those resources, a NIC holds the subnet (and so the VNet) it
attaches to. A job therefore locks

* the resource;
* its top-level parent when it is a child (subnets serialise with their VNet), and the
  resource an extension resource extends (tags on a VM lock the VM);
* resources its body references, per type (:data:`REFERENCE_PATHS`), with their parents;
* whatever ARM has since revealed (:func:`learned_dependency`): a 409 that names an operation
  on *another* resource is recorded in the store, and later claims take both keys.

Keys are :attr:`ResourceId.key`: case-folded, because ARM compares names case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from armguard.arm.classify import Classification
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id

__all__ = ["REFERENCE_PATHS", "learned_dependency", "lock_keys", "referenced_ids"]

# Paths of resource references in a body, per (lower-cased) type. ``[]`` walks a list.
REFERENCE_PATHS: dict[str, tuple[str, ...]] = {
    "microsoft.network/virtualnetworks/subnets": (
        "properties.networkSecurityGroup.id",
        "properties.routeTable.id",
        "properties.natGateway.id",
    ),
    "microsoft.network/virtualnetworks": (
        "properties.subnets[].properties.networkSecurityGroup.id",
        "properties.subnets[].properties.routeTable.id",
        "properties.subnets[].properties.natGateway.id",
    ),
    "microsoft.network/networkinterfaces": (
        "properties.ipConfigurations[].properties.subnet.id",
        "properties.ipConfigurations[].properties.publicIPAddress.id",
        "properties.networkSecurityGroup.id",
    ),
    "microsoft.compute/virtualmachines": ("properties.networkProfile.networkInterfaces[].id",),
    "microsoft.network/loadbalancers": (
        "properties.frontendIPConfigurations[].properties.subnet.id",
        "properties.frontendIPConfigurations[].properties.publicIPAddress.id",
    ),
}

_RESOURCE_ID_RE = re.compile(r"/subscriptions/[^\s'\"<>,;()?]+", re.IGNORECASE)


def _walk(doc: Any, parts: list[str]) -> Iterator[Any]:
    if not parts:
        yield doc
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    key = head[:-2] if many else head
    if not isinstance(doc, Mapping) or key not in doc:
        return
    value = doc[key]
    if many:
        if isinstance(value, list):
            for item in value:
                yield from _walk(item, rest)
    else:
        yield from _walk(value, rest)


def referenced_ids(rid: ResourceId, body: Mapping[str, Any] | None) -> list[ResourceId]:
    """Resources ``body`` refers to through the type's known reference paths."""
    if not body:
        return []
    out: list[ResourceId] = []
    for path in REFERENCE_PATHS.get(rid.type.lower(), ()):
        for value in _walk(body, path.split(".")):
            if not isinstance(value, str):
                continue
            try:
                ref = parse_resource_id(value)
            except InvalidResourceId:
                continue
            if ref.is_resource and ref not in out:
                out.append(ref)
    return out


def _own_keys(rid: ResourceId) -> list[ResourceId]:
    ids = [rid]
    if rid.is_child:
        ids.append(rid.top_level)
    if rid.is_extension and rid.scope.is_resource:
        ids.append(rid.scope)
        if rid.scope.is_child:
            ids.append(rid.scope.top_level)
    return ids


def lock_keys(rid: ResourceId, body: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Every key a write of ``body`` to ``rid`` must hold, sorted (a fixed global order)."""
    ids = _own_keys(rid)
    for ref in referenced_ids(rid, body):
        ids.extend(_own_keys(ref))
    return tuple(sorted({i.key for i in ids}))


def learned_dependency(target: ResourceId, classification: Classification) -> str | None:
    """The key of another resource a conflict names, when it is not within the target's own scope.

    ARM's ``AnotherOperationInProgress`` on a subnet can be caused by a NIC or an NSG write; when
    the message names that resource, the pair is a dependency the static rules missed.
    """
    own = {i.key for i in _own_keys(target)}
    text = classification.message
    op_url = classification.operation_url or ""
    for match in _RESOURCE_ID_RE.finditer(text):
        candidate = match.group(0).rstrip(".'\"")
        if op_url and candidate in op_url:
            continue
        try:
            ref = parse_resource_id(candidate)
        except InvalidResourceId:
            continue
        if not ref.is_resource:
            continue
        top = ref.top_level if ref.is_child else ref
        if ref.key in own or top.key in own or target.is_within(ref):
            continue
        return top.key
    return None
