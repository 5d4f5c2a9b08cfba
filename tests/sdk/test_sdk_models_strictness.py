"""The Python SDKs' model objects against the emulator's strictness: what a model serialises
is accepted; a snake_case dict (what a TypeSpec SDK user might pass instead) is refused as
compute refuses it, not stored as a VM without a size; a disk is created by the SDK's poller,
which accepts only the disk API's 200/202."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    CreationData,
    Disk,
    DiskSku,
    HardwareProfile,
    NetworkInterfaceReference,
    NetworkProfile,
    VirtualMachine,
)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    AddressSpace,
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    Subnet,
    VirtualNetwork,
)
from azure.mgmt.resource.resources import ResourceManagementClient
from sdk_helpers import RG, SUB

from armguard.testing import EmulatorHandle


def test_models_are_accepted_and_snake_case_dicts_refused(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    network = arm.client(NetworkManagementClient, subscription_id=SUB)
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    vnet = network.virtual_networks.begin_create_or_update(
        RG,
        "vnet1",
        VirtualNetwork(
            location="eastus",
            address_space=AddressSpace(address_prefixes=["10.0.0.0/16"]),
            subnets=[Subnet(name="s1", address_prefix="10.0.0.0/24")],
        ),
    ).result()
    assert vnet.subnets is not None
    nic = network.network_interfaces.begin_create_or_update(
        RG,
        "nic1",
        NetworkInterface(
            location="eastus",
            ip_configurations=[
                NetworkInterfaceIPConfiguration(name="ip1", subnet=Subnet(id=vnet.subnets[0].id))
            ],
        ),
    ).result()
    with pytest.raises(HttpResponseError) as refused:
        compute.virtual_machines.begin_create_or_update(
            RG,
            "vm1",
            {"location": "eastus", "properties": {"hardware_profile": {"vm_size": "B1s"}}},
        )
    assert refused.value.status_code == 400
    assert refused.value.error is not None
    assert refused.value.error.code == "InvalidRequestContent"
    assert "Could not find member 'hardware_profile'" in str(refused.value)
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get(RG, "vm1")
    vm = compute.virtual_machines.begin_create_or_update(
        RG,
        "vm1",
        VirtualMachine(
            location="eastus",
            hardware_profile=HardwareProfile(vm_size="Standard_B1s"),
            network_profile=NetworkProfile(
                network_interfaces=[NetworkInterfaceReference(id=nic.id, primary=True)]
            ),
        ),
    ).result()
    assert vm.hardware_profile is not None
    assert vm.hardware_profile.vm_size == "Standard_B1s"


def test_the_disk_poller_accepts_the_emulators_answer(
    arm: EmulatorHandle, resources: ResourceManagementClient
) -> None:
    compute = arm.client(ComputeManagementClient, subscription_id=SUB)
    disk = compute.disks.begin_create_or_update(
        RG,
        "d1",
        Disk(
            location="eastus",
            sku=DiskSku(name="Standard_LRS"),
            creation_data=CreationData(create_option="Empty"),
            disk_size_gb=32,
        ),
    ).result()
    assert disk.name == "d1"
    assert disk.provisioning_state == "Succeeded"
