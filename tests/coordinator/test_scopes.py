"""Lock keys: the resource, its parent, referenced resources, and learned dependencies."""

from __future__ import annotations

from armguard.arm.classify import classify
from armguard.arm.ids import ResourceId
from armguard.coordinator.scopes import learned_dependency, lock_keys, referenced_ids

RG = "/subscriptions/s1/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet"
SUBNET = f"{VNET}/subnets/app"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg"
RT = f"{RG}/providers/Microsoft.Network/routeTables/rt"
NIC = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic"


def key(text: str) -> str:
    return ResourceId.parse(text).key


def test_a_top_level_resource_locks_only_itself() -> None:
    assert lock_keys(ResourceId.parse(NSG)) == (key(NSG),)


def test_a_subnet_serialises_with_its_vnet_and_case_is_folded() -> None:
    keys = lock_keys(ResourceId.parse(SUBNET.replace("resourceGroups/rg", "resourcegroups/RG")))
    assert keys == tuple(sorted({key(SUBNET), key(VNET)}))


def test_subnet_references_lock_the_nsg_and_route_table() -> None:
    body = {"properties": {"networkSecurityGroup": {"id": NSG}, "routeTable": {"id": RT}}}
    keys = lock_keys(ResourceId.parse(SUBNET), body)
    assert set(keys) == {key(SUBNET), key(VNET), key(NSG), key(RT)}
    assert list(keys) == sorted(keys)


def test_a_nic_locks_the_vnet_of_every_subnet_it_joins() -> None:
    body = {
        "properties": {
            "ipConfigurations": [
                {"properties": {"subnet": {"id": SUBNET}}},
                {"properties": {"subnet": {"id": f"{VNET}/subnets/db"}}},
                {"properties": {}},
            ]
        }
    }
    refs = referenced_ids(ResourceId.parse(NIC), body)
    assert [r.name for r in refs] == ["app", "db"]
    assert key(VNET) in lock_keys(ResourceId.parse(NIC), body)


def test_bad_references_are_ignored_not_fatal() -> None:
    body = {"properties": {"networkSecurityGroup": {"id": "not-an-id"}, "routeTable": {"id": 5}}}
    assert lock_keys(ResourceId.parse(SUBNET), body) == tuple(sorted({key(SUBNET), key(VNET)}))


def test_extension_resources_lock_what_they_extend() -> None:
    tags = ResourceId.parse(f"{SUBNET}/providers/Microsoft.Resources/tags/default")
    assert set(lock_keys(tags)) == {tags.key, key(SUBNET), key(VNET)}


def test_a_conflict_naming_another_resource_is_a_learned_dependency() -> None:
    target = ResourceId.parse(SUBNET)
    other = classify(
        409,
        "AnotherOperationInProgress",
        f"Operation on resource '{NIC.upper()}' is in progress. To retrieve status of the "
        "operation use uri: https://management.azure.com/subscriptions/s1/providers/"
        "Microsoft.Network/locations/eastus/operations/abc?api-version=2024-05-01.",
    )
    assert learned_dependency(target, other) == key(NIC)


def test_a_conflict_on_the_target_or_its_parent_teaches_nothing() -> None:
    target = ResourceId.parse(SUBNET)
    for named in (SUBNET, VNET, RG):
        c = classify(409, "AnotherOperationInProgress", f"The resource '{named}' is busy.")
        assert learned_dependency(target, c) is None
    plain = classify(
        409,
        "AnotherOperationInProgress",
        "Another operation on this or dependent resource is in progress. To retrieve status of "
        "the operation use uri: https://management.azure.com/subscriptions/s1/providers/"
        "Microsoft.Network/locations/eastus/operations/abc?api-version=2024-05-01.",
    )
    assert learned_dependency(target, plain) is None
