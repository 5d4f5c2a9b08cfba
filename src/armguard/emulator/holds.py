"""Which in-flight operation blocks which write.

An operation holds its target, the target's children (a VNet update holds its subnets; a group
delete holds everything inside), the target's resource ancestors (a subnet write holds its
VNet), and every resource it references (a subnet's NSG and route table, a NIC's subnets).
Resource providers that serialise through the top-level resource (Microsoft.Network) also
make siblings collide: two subnets of one VNet cannot be written at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from armguard.arm.ids import ResourceId
from armguard.emulator.model import Operation

__all__ = ["blocking_operation", "blocks"]


def blocks(
    op: Operation,
    target: ResourceId,
    target_references: frozenset[str],
    *,
    serialize_top_level: bool,
) -> bool:
    held = op.target
    if held == target:
        return True
    if target.is_within(held):
        return True
    if target.is_resource and held.is_within(target):
        return True
    if (
        serialize_top_level
        and held.is_resource
        and target.is_resource
        and held.top_level == target.top_level
    ):
        return True
    return target.key in op.references or held.key in target_references


def blocking_operation(
    running: Iterable[Operation],
    target: ResourceId,
    target_references: frozenset[str],
    *,
    serialize_top_level: bool,
    ignore: Iterable[Operation] = (),
) -> Operation | None:
    """The oldest running operation that blocks a write to ``target``, if any."""
    skipped = {id(o) for o in ignore}
    candidates = [
        op
        for op in running
        if id(op) not in skipped
        and blocks(op, target, target_references, serialize_top_level=serialize_top_level)
    ]
    return min(candidates, key=lambda o: o.started_at) if candidates else None
