"""The seed incidents, reproduced through the official SDKs, unmodified except base URL,
credential and enforce_https."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.locks.models import ManagementLockObject
from azure.mgmt.resource.resources import ResourceManagementClient
from sdk_helpers import RG, RG_ID, SUB, WINDOW
from urllib3.exceptions import InsecureRequestWarning

from armguard.testing import EmulatorHandle, make_token

VM = {
    "location": "eastus",
    "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}},
}


def activity(arm: EmulatorHandle, extra: str = "") -> list[Any]:
    monitor = arm.client(MonitorManagementClient, subscription_id=SUB)
    return list(reversed(list(monitor.activity_logs.list(filter=WINDOW + extra))))


def refusals(arm: EmulatorHandle, resource_id: str, caller: str) -> list[tuple[str, str]]:
    """(statusCode, error code) of the writes ``caller`` had refused on ``resource_id``, read
    through azure-mgmt-monitor as an incident responder would."""
    events = activity(arm, f" and resourceUri eq '{resource_id}' and caller eq '{caller}'")
    assert all(e.caller == caller for e in events)
    return [
        (e.properties["statusCode"], json.loads(e.properties["statusMessage"])["error"]["code"])
        for e in events
        if e.status.value == "Failed"
    ]


def test_stale_etag_is_a_typed_412(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB, caller="writer@example.com")
    vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", VM).result(timeout=30)
    first_etag = vm.etag
    assert first_etag == '"1"'
    updated = compute.virtual_machines.begin_update(
        RG,
        "vm1",
        {"tags": {"owner": "a"}},
        etag=first_etag,
        match_condition=MatchConditions.IfNotModified,
    ).result(timeout=30)
    assert updated.etag == '"2"'
    with pytest.raises(ResourceModifiedError) as info:
        compute.virtual_machines.begin_update(
            RG,
            "vm1",
            {"tags": {"owner": "b"}},
            etag=first_etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert info.value.status_code == 412
    assert info.value.error.code == "PreconditionFailed"
    with pytest.raises(ResourceExistsError):
        compute.virtual_machines.begin_create_or_update(
            RG, "vm1", VM, match_condition=MatchConditions.IfMissing
        )
    network = arm.client(NetworkManagementClient, subscription_id=SUB, caller="netops@example.com")
    nsg = network.network_security_groups.begin_create_or_update(
        RG, "nsg1", {"location": "eastus"}
    ).result(timeout=30)
    network.network_security_groups.begin_create_or_update(
        RG, "nsg1", {"location": "eastus", "tags": {"a": "1"}}, headers={"If-Match": nsg.etag}
    ).result(timeout=30)
    with pytest.raises(HttpResponseError) as stale:
        network.network_security_groups.begin_create_or_update(
            RG, "nsg1", {"location": "eastus"}, headers={"If-Match": nsg.etag}
        )
    assert stale.value.status_code == 412
    assert stale.value.error.details[0].code == "PreconditionFailedEtagMismatch"
    # Each refusal is in the Activity Log under the writer who sent the stale token.
    vm_id = f"{RG_ID}/providers/Microsoft.Compute/virtualMachines/vm1"
    assert refusals(arm, vm_id, "writer@example.com") == [
        ("PreconditionFailed", "PreconditionFailed"),
        ("PreconditionFailed", "PreconditionFailed"),
    ]
    nsg_id = f"{RG_ID}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
    assert refusals(arm, nsg_id, "netops@example.com") == [
        ("PreconditionFailed", "PreconditionFailed")
    ]


def test_resize_needs_deallocation(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB, caller="ops@example.com")
    compute.virtual_machines.begin_create_or_update(RG, "vm1", VM).result(timeout=30)
    resize = {"properties": {"hardwareProfile": {"vmSize": "Standard_D8s_v5"}}}
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_update(RG, "vm1", resize)
    assert info.value.status_code == 409
    assert info.value.error.code == "OperationNotAllowed"
    assert "please deallocate" in info.value.error.message
    compute.virtual_machines.begin_deallocate(RG, "vm1").result(timeout=30)
    statuses = compute.virtual_machines.instance_view(RG, "vm1").statuses
    assert "PowerState/deallocated" in [s.code for s in statuses]
    resized = compute.virtual_machines.begin_update(RG, "vm1", resize).result(timeout=30)
    assert resized.properties.hardware_profile.vm_size == "Standard_D8s_v5"
    compute.virtual_machines.begin_start(RG, "vm1").result(timeout=30)
    view = compute.virtual_machines.get(RG, "vm1", expand="instanceView").properties.instance_view
    assert "PowerState/running" in [s.code for s in view.statuses]
    events = activity(
        arm, f" and resourceUri eq '{RG_ID}/providers/Microsoft.Compute/virtualMachines/vm1'"
    )
    failed = [e for e in events if e.status.value == "Failed"]
    assert failed
    assert failed[0].caller == "ops@example.com"
    assert "OperationNotAllowed" in failed[0].properties["statusMessage"]


def test_subnet_write_during_a_vnet_deployment(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    deployments = arm.client(
        DeploymentsMgmtClient, subscription_id=SUB, caller="pipeline@example.com"
    )
    network = arm.client(NetworkManagementClient, subscription_id=SUB, caller="dev@example.com")
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2024-05-01",
                "name": "vnet1",
                "location": "[resourceGroup().location]",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": "a", "properties": {"addressPrefix": "10.0.0.0/24"}}],
                },
            }
        ],
    }
    arm.core.time_scale = 1.0
    release = arm.client(DeploymentsMgmtClient, subscription_id=SUB, caller="release@example.com")
    poller = deployments.deployments.begin_create_or_update(
        RG, "net", {"properties": {"mode": "Incremental", "template": template}}
    )
    again = None
    with pytest.raises(HttpResponseError) as active:
        again = release.deployments.begin_create_or_update(
            RG, "net", {"properties": {"mode": "Incremental", "template": template}}
        )
    assert again is None
    assert active.value.error.code == "DeploymentActive"
    deployment_id = f"{RG_ID}/providers/Microsoft.Resources/deployments/net"
    assert refusals(arm, deployment_id, "release@example.com") == [("Conflict", "DeploymentActive")]
    with pytest.raises(HttpResponseError) as busy:
        network.subnets.begin_create_or_update(
            RG, "vnet1", "b", {"properties": {"addressPrefix": "10.0.1.0/24"}}
        )
    assert busy.value.status_code == 409
    assert busy.value.error.code == "AnotherOperationInProgress"
    status_url = busy.value.error.message.split("use uri: ")[1].rstrip(".")
    auth = {"Authorization": f"Bearer {make_token('dev@example.com')}"}
    assert httpx.get(status_url, headers=auth).json()["status"] == "InProgress"
    arm.advance(60)
    assert httpx.get(status_url, headers=auth).json()["status"] == "Succeeded"
    result = poller.result(timeout=30)
    assert result.properties.provisioning_state == "Succeeded"
    arm.core.time_scale = 0
    subnet = network.subnets.begin_create_or_update(
        RG, "vnet1", "b", {"properties": {"addressPrefix": "10.0.1.0/24"}}
    ).result(timeout=30)
    assert subnet.properties.provisioning_state == "Succeeded"
    names = [s.name for s in network.virtual_networks.get(RG, "vnet1").properties.subnets]
    assert names == ["a", "b"]
    ops = list(deployments.deployment_operations.list(RG, "net"))
    assert [o.properties.target_resource.resource_name for o in ops] == ["vnet1"]
    callers = {(e.caller, e.status.value) for e in activity(arm)}
    assert ("pipeline@example.com", "Succeeded") in callers
    assert ("dev@example.com", "Failed") in callers


def test_compute_preemption_surfaces_as_a_failed_poller(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    arm.core.time_scale = 1.0
    first = compute.virtual_machines.begin_create_or_update(RG, "vm1", VM)
    second = compute.virtual_machines.begin_create_or_update(RG, "vm1", {**VM, "tags": {"v": "2"}})
    with pytest.raises(HttpResponseError) as info:
        first.result(timeout=30)
    assert info.value.error.code == "OperationPreempted"
    arm.advance(120)
    assert second.result(timeout=30).tags == {"v": "2"}


def test_https_with_the_emulators_ca(tmp_path: Any) -> None:
    from armguard.clock import ManualClock
    from armguard.testing import emulator

    with emulator(clock=ManualClock(), time_scale=0, retry_after_max=1, tls_dir=tmp_path) as arm:
        assert arm.base_url.startswith("https://")
        client = arm.client(ResourceManagementClient, subscription_id=SUB, per_call_policies=[])
        client.resource_groups.create_or_update(RG, {"location": "eastus"})
        assert client.resource_groups.get(RG).name == RG
        client.close()
        insecure = arm.client(
            ResourceManagementClient, subscription_id=SUB, connection_verify=False
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            assert insecure.resource_groups.check_existence(RG) is True
        insecure.close()


def test_activity_log_via_monitor_shows_callers(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    other = arm.client(ResourceManagementClient, subscription_id=SUB, caller="bob@example.com")
    other.resource_groups.update(RG, {"tags": {"by": "bob"}})
    events = activity(arm, f" and resourceGroupName eq '{RG}'")
    assert {e.caller for e in events} >= {"user@example.com", "bob@example.com"}
    assert all(e.operation_name.value == "Microsoft.Resources/resourceGroups/write" for e in events)


def test_a_read_only_lock_refuses_writers_in_the_activity_log(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    locks = arm.client(ManagementLockClient, subscription_id=SUB, caller="admin@example.com")
    network = arm.client(NetworkManagementClient, subscription_id=SUB, caller="dev@example.com")
    network.network_security_groups.begin_create_or_update(
        RG, "nsg1", {"location": "eastus"}
    ).result(timeout=30)
    locks.management_locks.create_or_update_at_resource_group_level(
        RG, "freeze", ManagementLockObject(level="ReadOnly", notes="change freeze")
    )
    with pytest.raises(HttpResponseError) as info:
        network.network_security_groups.begin_create_or_update(
            RG, "nsg1", {"location": "eastus", "tags": {"a": "1"}}
        )
    assert info.value.status_code == 409
    assert info.value.error.code == "ScopeLocked"
    with pytest.raises(HttpResponseError) as deleting:
        network.network_security_groups.begin_delete(RG, "nsg1")
    assert deleting.value.error.code == "ScopeLocked"
    nsg_id = f"{RG_ID}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
    assert refusals(arm, nsg_id, "dev@example.com") == [
        ("Conflict", "ScopeLocked"),
        ("Conflict", "ScopeLocked"),
    ]
    operations = [
        e.operation_name.value
        for e in activity(arm, f" and resourceUri eq '{nsg_id}'")
        if e.status.value == "Failed"
    ]
    assert operations == [
        "Microsoft.Network/networkSecurityGroups/write",
        "Microsoft.Network/networkSecurityGroups/delete",
    ]
    # The lock itself stays manageable, and writes go through once it is gone.
    locks.management_locks.delete_at_resource_group_level(RG, "freeze")
    network.network_security_groups.begin_create_or_update(
        RG, "nsg1", {"location": "eastus", "tags": {"a": "1"}}
    ).result(timeout=30)
