"""Refusals the official SDKs meet with model objects: a location no region could have, and a
power action sent while another writer deallocates the VM. Each comes back as the
``HttpResponseError`` the SDK raises for ARM's answer, code and text as ARM gives them."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import HardwareProfile, VirtualMachine
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import AddressSpace, VirtualNetwork
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import ResourceGroup
from sdk_helpers import RG

from armguard.clock import ManualClock
from armguard.testing import emulator

VM_TYPE = "Microsoft.Compute/virtualMachines"


def test_a_location_no_region_could_have_is_a_400_before_anything_is_written() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        groups = arm.client(ResourceManagementClient).resource_groups
        with pytest.raises(HttpResponseError) as refused:
            groups.create_or_update(RG, ResourceGroup(location="East US\u0000"))
        assert refused.value.status_code == 400
        assert refused.value.error is not None
        assert refused.value.error.code == "LocationNotAvailableForResourceGroup"
        assert not groups.check_existence(RG)
        groups.create_or_update(RG, ResourceGroup(location="East US 2"))
        networks = arm.client(NetworkManagementClient).virtual_networks
        vnet = VirtualNetwork(
            location="x" * 1000, address_space=AddressSpace(address_prefixes=["10.0.0.0/16"])
        )
        with pytest.raises(HttpResponseError) as refused:
            networks.begin_create_or_update(RG, "vnet1", vnet)
        assert refused.value.error is not None
        assert refused.value.error.code == "LocationNotAvailableForResourceType"
        assert "'Microsoft.Network/virtualNetworks'" in str(refused.value.error.message)


def test_a_power_off_while_another_writer_deallocates_is_refused_as_deallocated() -> None:
    durations = {VM_TYPE: {"durations": {"create": 10, "deallocate": 120}}}
    with emulator(clock=ManualClock(), type_settings=durations) as arm:
        arm.client(ResourceManagementClient).resource_groups.create_or_update(
            RG, ResourceGroup(location="eastus")
        )
        compute = arm.client(ComputeManagementClient)
        vm = VirtualMachine(
            location="eastus", hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5")
        )
        created = compute.virtual_machines.begin_create_or_update(RG, "vm1", vm)
        arm.advance(10)
        created.result(timeout=30)
        deallocating = compute.virtual_machines.begin_deallocate(RG, "vm1")
        with pytest.raises(HttpResponseError) as refused:
            compute.virtual_machines.begin_power_off(RG, "vm1")
        assert refused.value.status_code == 409
        assert refused.value.error is not None
        assert refused.value.error.code == "OperationNotAllowed"
        assert str(refused.value.error.message).startswith(
            "Operation 'powerOff' is not allowed on VM 'vm1' since the VM is either deallocated "
            "or marked to be deallocated."
        )
        arm.advance(120)
        deallocating.result(timeout=30)
