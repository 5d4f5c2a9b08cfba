"""Types the emulator does not model answer a PUT with the status codes their real API
allows, so the official SDKs accept the answer (a 201 where the API lists only 200 fails the
call with ``Operation returned an invalid status 'Created'``)."""

from __future__ import annotations

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from sdk_helpers import RG, SUB

from armguard.testing import EmulatorHandle


def test_generic_types_answer_what_their_sdk_accepts(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    network = arm.client(NetworkManagementClient, subscription_id=SUB)
    storage = arm.client(StorageManagementClient, subscription_id=SUB)
    # Synchronous, 200 only: create and update.
    for fault_domains in (2, 3):
        avset = compute.availability_sets.create_or_update(
            RG,
            "avset1",
            {"location": "eastus", "properties": {"platformFaultDomainCount": fault_domains}},
        )
        assert avset.platform_fault_domain_count == fault_domains
    # Synchronous, 200 or 201.
    watcher = network.network_watchers.create_or_update(RG, "nw1", {"location": "eastus"})
    assert watcher.name == "nw1"
    # Long-running, 200 or 202 (never 201).
    des = compute.disk_encryption_sets.begin_create_or_update(
        RG, "des1", {"location": "eastus", "identity": {"type": "SystemAssigned"}}
    ).result()
    assert des.name == "des1"
    # A storage child answering 200 only.
    storage.storage_accounts.begin_create(
        RG, "store1", {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    ).result()
    policy = storage.management_policies.create_or_update(
        RG, "store1", "default", {"properties": {"policy": {"rules": []}}}
    )
    assert policy.name == "default"
