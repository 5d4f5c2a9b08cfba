"""What real ARM refuses, the served emulator refuses too, with ARM's code and text: unknown
namespaces, api-versions a type never shipped, unknown members on compute's typed bodies,
tracked resources without a location, references to resources that do not exist; and the
disk API's own status codes."""

from __future__ import annotations

from typing import Any

import pytest
from arm_helpers import COMPUTE, NET, RG, SUB, VM, VNET, Arm, error_code, vm_body, vnet_body

from armguard.clock import ManualClock

NIC = f"{NET}/networkInterfaces/nic1"
SUBNET = f"{VNET}/subnets/s1"


def _nic(subnet: str = SUBNET) -> dict[str, Any]:
    return {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [{"name": "ip1", "properties": {"subnet": {"id": subnet}}}]
        },
    }


def test_an_unknown_namespace_is_refused_for_every_method(arm: Arm, group: str) -> None:
    path = f"{RG}/providers/Contoso.Widgets/widgets/w1"
    for method, body in (("PUT", {"location": "eastus"}), ("GET", None), ("DELETE", None)):
        response = arm.request(method, path, body)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["error"] == {
            "code": "InvalidResourceNamespace",
            "message": "The resource namespace 'Contoso.Widgets' is invalid.",
            "details": [],
        }
    listed = arm.get(f"{RG}/providers/Contoso.Widgets/widgets")
    assert error_code(listed) == "InvalidResourceNamespace"
    # A registered namespace the emulator does not model is a generic tracked resource.
    assert arm.put(f"{RG}/providers/Microsoft.Cache/redis/r1", {"location": "eastus"}).is_success


def test_an_unsupported_version_of_a_provider_type_lists_the_supported_ones(
    arm: Arm, group: str
) -> None:
    response = arm.put(VNET, vnet_body(), params={"api-version": "2024-02-01"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert error["message"].startswith(
        "No registered resource provider found for location 'eastus' and API version "
        "'2024-02-01' for type 'virtualNetworks'. The supported api-versions are '2025-05-01, "
        "2025-03-01, 2025-01-01, "
    )
    assert "2015-06-15'. The supported locations are 'eastus, eastus2, " in error["message"]
    assert arm.get(VNET, params={"api-version": "2024-02-01"}).status_code == 400
    # A listed version, and one newer than the catalog (a newer SDK), are served.
    assert arm.put(VNET, vnet_body(), params={"api-version": "2023-09-01"}).status_code == 201
    assert arm.get(VNET, params={"api-version": "2027-01-01"}).status_code == 200


def test_an_unsupported_version_of_an_arm_type_is_invalid(arm: Arm, group: str) -> None:
    response = arm.get(RG, params={"api-version": "2024-01-01"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidApiVersionParameter"
    assert error["message"].startswith(
        "The api-version '2024-01-01' is invalid. The supported versions are '2025-04-01, "
    )
    lock = f"{RG}/providers/Microsoft.Authorization/locks/l1"
    refused = arm.put(
        lock, {"properties": {"level": "CanNotDelete"}}, params={"api-version": "2018-01-01"}
    )
    assert refused.json()["error"]["message"] == (
        "The api-version '2018-01-01' is invalid. The supported versions are "
        "'2020-05-01, 2016-09-01, 2015-01-01'."
    )
    assert arm.get(f"{SUB}/resourcegroups", params={"api-version": "2024-01-01"}).status_code == 400


def test_compute_refuses_members_its_models_do_not_have(arm: Arm, group: str) -> None:
    # A snake_case dict passed to a TypeSpec SDK: real compute refuses it, no VM without a size.
    body = {"location": "eastus", "properties": {"hardware_profile": {"vm_size": "Standard_B1s"}}}
    response = arm.put(VM, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"
    assert response.json()["error"]["message"] == (
        "The request content was invalid and could not be deserialized: 'Could not find member "
        "'hardware_profile' on object of type 'VirtualMachineProperties'. Path "
        "'properties.hardware_profile'.'."
    )
    nested = vm_body()
    nested["properties"]["hardwareProfile"]["vmSizeName"] = "x"
    assert (
        "'HardwareProfile'. Path 'properties.hardwareProfile.vmSizeName'"
        in (arm.put(VM, nested).json()["error"]["message"])
    )
    top = {**vm_body(), "resources": [], "colour": "blue"}
    assert "'colour' on object of type 'ResourceDefinition'" in arm.put(VM, top).text
    assert arm.get(VM).status_code == 404
    # Member names are case-insensitive, as compute's deserialiser reads them.
    fine = vm_body()
    fine["properties"]["HardwareProfile"] = fine["properties"].pop("hardwareProfile")
    assert arm.put(VM, fine).status_code == 201


def test_network_and_storage_keep_unknown_members(arm: Arm, group: str) -> None:
    body = vnet_body()
    body["properties"]["somethingNew"] = True
    assert arm.put(VNET, body).status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        VNET,
        NIC,
        f"{NET}/networkSecurityGroups/nsg1",
        VM,
        f"{RG}/providers/Microsoft.Storage/storageAccounts/store1",
        f"{COMPUTE}/disks/d1",
        f"{SUB}/resourcegroups/rg2",
    ],
)
def test_a_tracked_resource_needs_a_location(arm: Arm, group: str, path: str) -> None:
    response = arm.put(path, {"properties": {}})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "LocationRequired",
        "message": "The location property is required for this definition.",
        "details": [],
    }


@pytest.mark.parametrize("location", ["x" * 100_000, "east\tus", "eastus/../westus", "caf\u00e9"])
def test_a_location_no_region_could_have_is_refused_before_anything_is_written(
    arm: Arm, group: str, location: str
) -> None:
    body = vnet_body()
    body["location"] = location
    response = arm.put(VNET, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "LocationNotAvailableForResourceType"
    assert error["message"].startswith(f"The provided location '{location}' is not available ")
    assert "'Microsoft.Network/virtualNetworks'. List of available regions" in error["message"]
    assert arm.get(VNET).status_code == 404
    refused = arm.put(f"{SUB}/resourcegroups/rg2", {"location": location})
    assert error_code(refused) == "LocationNotAvailableForResourceGroup"
    # Display names and regions the emulator does not list are regions all the same.
    for fine in ("East US 2", "westindia", "global"):
        assert arm.put(
            f"{SUB}/resourcegroups/rg-{fine.replace(' ', '')}", {"location": fine}
        ).is_success


def test_a_subnet_needs_no_location(arm: Arm, group: str, manual_clock: ManualClock) -> None:
    assert arm.put(VNET, vnet_body()).status_code == 201
    manual_clock.advance(60)
    assert arm.put(SUBNET, {"properties": {"addressPrefix": "10.0.1.0/24"}}).status_code == 201


def test_a_nic_referencing_a_missing_subnet_is_refused(
    arm: Arm, group: str, manual_clock: ManualClock
) -> None:
    assert arm.put(VNET, vnet_body("s1")).status_code == 201
    manual_clock.advance(60)
    missing = f"{VNET}/subnets/nope"
    response = arm.put(NIC, _nic(missing))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "InvalidResourceReference",
        "message": f"Resource {missing} referenced by resource {NIC} was not found. Please make "
        "sure that the referenced resource exists, and that both resources are in the same "
        "region.",
        "details": [
            {"code": "NotFound", "message": f"Resource {missing} not found.", "details": []}
        ],
    }
    assert arm.get(NIC).status_code == 404
    assert arm.put(NIC, _nic()).status_code == 201
    manual_clock.advance(60)
    # A subnet naming an NSG that does not exist is refused the same way.
    nsg = f"{NET}/networkSecurityGroups/ghost"
    bad = arm.put(
        f"{VNET}/subnets/s2",
        {"properties": {"addressPrefix": "10.0.2.0/24", "networkSecurityGroup": {"id": nsg}}},
    )
    assert error_code(bad) == "InvalidResourceReference"


def test_a_vm_referencing_a_missing_nic_is_refused(arm: Arm, group: str) -> None:
    body = vm_body()
    body["properties"]["networkProfile"] = {"networkInterfaces": [{"id": NIC}]}
    response = arm.put(VM, body)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Resource {NIC} not found."


def test_disks_answer_only_what_their_api_allows(arm: Arm, group: str) -> None:
    disk = f"{COMPUTE}/disks/d1"
    body = {
        "location": "eastus",
        "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32},
    }
    created = arm.put(disk, body)
    assert created.status_code == 202
    assert "Azure-AsyncOperation" in created.headers
    updated = arm.put(disk, body)
    assert updated.status_code in (200, 202)
    refused = arm.put(disk, {**body, "AccountType": "StandardLRS"})
    assert "'AccountType' on object of type 'ResourceDefinition'" in refused.text
