"""azure-mgmt-resource: groups, resources by id, tags; azure-mgmt-resource-locks."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.locks.models import ManagementLockObject
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from sdk_helpers import RG, SUB

from armguard.testing import EmulatorHandle


def test_resource_groups_lifecycle(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    group = resources.resource_groups.get(RG)
    assert group.location == "eastus"
    assert group.properties.provisioning_state == "Succeeded"
    assert resources.resource_groups.check_existence(RG) is True
    resources.resource_groups.update(RG, {"tags": {"env": "test"}})
    assert [g.name for g in resources.resource_groups.list()] == [RG]
    resources.resource_groups.begin_delete(RG).result(timeout=30)
    assert resources.resource_groups.check_existence(RG) is False
    with pytest.raises(ResourceNotFoundError) as info:
        resources.resource_groups.get(RG)
    assert info.value.error.code == "ResourceGroupNotFound"


def test_generic_resources_by_id(arm: EmulatorHandle, resources: ResourceManagementClient) -> None:
    site = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Web/sites/site1"
    created = resources.resources.begin_create_or_update_by_id(
        site, {"location": "eastus", "properties": {"a": 1}}, api_version="2023-01-01"
    ).result(timeout=30)
    assert created.properties["provisioningState"] == "Succeeded"
    updated = resources.resources.begin_update_by_id(
        site, {"tags": {"x": "1"}}, api_version="2023-01-01"
    ).result(timeout=30)
    assert updated.tags == {"x": "1"}
    assert [r.name for r in resources.resources.list_by_resource_group(RG)] == ["site1"]
    resources.resources.begin_delete_by_id(site, api_version="2023-01-01").result(timeout=30)
    assert resources.resources.check_existence_by_id(site, api_version="2023-01-01") is False


def test_tags_merge_from_two_writers(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    scope = f"/subscriptions/{SUB}/resourceGroups/{RG}"
    other = arm.client(ResourceManagementClient, subscription_id=SUB, caller="bob@example.com")
    resources.tags.begin_create_or_update_at_scope(
        scope, {"properties": {"tags": {"owner": "alice"}}}
    ).result(timeout=30)
    resources.tags.begin_update_at_scope(
        scope, {"operation": "Merge", "properties": {"tags": {"team": "a"}}}
    ).result(timeout=30)
    other.tags.begin_update_at_scope(
        scope, {"operation": "Merge", "properties": {"tags": {"cost": "b"}}}
    ).result(timeout=30)
    assert resources.tags.get_at_scope(scope).properties.tags == {
        "owner": "alice",
        "team": "a",
        "cost": "b",
    }


def test_locks_block_list_keys_and_deletes(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    locks = arm.client(ManagementLockClient, subscription_id=SUB)
    storage = arm.client(StorageManagementClient, subscription_id=SUB)
    storage.storage_accounts.begin_create(
        RG, "acct1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}
    ).result(timeout=30)
    assert [k.key_name for k in storage.storage_accounts.list_keys(RG, "acct1")["keys"]] == [
        "key1",
        "key2",
    ]
    locks.management_locks.create_or_update_at_resource_group_level(
        RG, "readonly", ManagementLockObject(level="ReadOnly", notes="frozen")
    )
    with pytest.raises(HttpResponseError) as info:
        storage.storage_accounts.list_keys(RG, "acct1")
    assert info.value.status_code == 409
    assert info.value.error.code == "ScopeLocked"
    assert "cannot perform write operation" in info.value.error.message
    locks.management_locks.delete_at_resource_group_level(RG, "readonly")
    locks.management_locks.create_or_update_at_resource_level(
        RG,
        "Microsoft.Storage",
        "",
        "storageAccounts",
        "acct1",
        "nodelete",
        ManagementLockObject(level="CanNotDelete"),
    )
    with pytest.raises(HttpResponseError) as info:
        storage.storage_accounts.delete(RG, "acct1")
    assert info.value.error.code == "ScopeLocked"
    assert "cannot perform delete operation" in info.value.error.message
    listed = list(locks.management_locks.list_at_resource_group_level(RG))
    assert [lk.name for lk in listed] == ["nodelete"]
    locks.management_locks.delete_at_resource_level(
        RG, "Microsoft.Storage", "", "storageAccounts", "acct1", "nodelete"
    )
    storage.storage_accounts.delete(RG, "acct1")
