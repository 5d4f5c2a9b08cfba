"""The defaults real resource providers fill into their answers (as the specs' examples show
them) are in the emulator's answers too; a value the body sets wins."""

from __future__ import annotations

from typing import Any

from arm_helpers import COMPUTE, NET, RG, STORAGE, VNET, Arm, vm_body, vnet_body

from armguard.clock import ManualClock


def _put(arm: Arm, clock: ManualClock, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = arm.put(path, body)
    assert response.status_code in (200, 201, 202), response.text
    clock.advance(300)
    read = arm.get(path)
    assert read.status_code == 200, read.text
    return dict(read.json())


def test_network_defaults(arm: Arm, group: str, manual_clock: ManualClock) -> None:
    vnet = _put(arm, manual_clock, VNET, vnet_body("s1"))
    assert vnet["properties"]["virtualNetworkPeerings"] == []

    nsg = _put(arm, manual_clock, f"{NET}/networkSecurityGroups/nsg1", {"location": "eastus"})
    assert nsg["properties"]["securityRules"] == []
    rules = nsg["properties"]["defaultSecurityRules"]
    assert [r["name"] for r in rules] == [
        "AllowVnetInBound",
        "AllowAzureLoadBalancerInBound",
        "DenyAllInBound",
        "AllowVnetOutBound",
        "AllowInternetOutBound",
        "DenyAllOutBound",
    ]
    assert rules[2]["id"] == f"{NET}/networkSecurityGroups/nsg1/defaultSecurityRules/DenyAllInBound"
    assert rules[2]["properties"]["access"] == "Deny"
    assert rules[2]["properties"]["priority"] == 65500

    pip = _put(arm, manual_clock, f"{NET}/publicIPAddresses/pip1", {"location": "eastus"})
    assert pip["sku"] == {"name": "Basic", "tier": "Regional"}
    assert pip["properties"]["publicIPAddressVersion"] == "IPv4"
    assert pip["properties"]["publicIPAllocationMethod"] == "Dynamic"
    assert pip["properties"]["idleTimeoutInMinutes"] == 4
    standard = _put(
        arm,
        manual_clock,
        f"{NET}/publicIPAddresses/pip2",
        {
            "location": "eastus",
            "sku": {"name": "Standard"},
            "properties": {"idleTimeoutInMinutes": 9},
        },
    )
    assert standard["properties"]["publicIPAllocationMethod"] == "Static"
    assert standard["properties"]["idleTimeoutInMinutes"] == 9

    nic_body = {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [
                {"name": "ip1", "properties": {"subnet": {"id": f"{VNET}/subnets/s1"}}}
            ]
        },
    }
    nic = _put(arm, manual_clock, f"{NET}/networkInterfaces/nic1", nic_body)
    assert nic["properties"]["dnsSettings"] == {"dnsServers": [], "appliedDnsServers": []}
    assert nic["properties"]["enableIPForwarding"] is False
    conf = nic["properties"]["ipConfigurations"][0]["properties"]
    assert conf["privateIPAllocationMethod"] == "Dynamic"
    assert conf["primary"] is True
    # s1 is 10.0.0.0/24: Azure keeps .0-.3, so the first NIC gets .4 and the next .5.
    assert conf["privateIPAddress"] == "10.0.0.4"
    second = _put(arm, manual_clock, f"{NET}/networkInterfaces/nic2", nic_body)
    assert second["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] == (
        "10.0.0.5"
    )
    # A re-PUT keeps the address it was given.
    again = _put(arm, manual_clock, f"{NET}/networkInterfaces/nic1", nic_body)
    assert again["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] == (
        "10.0.0.4"
    )

    table = _put(arm, manual_clock, f"{NET}/routeTables/rt1", {"location": "eastus"})
    assert table["properties"]["routes"] == []
    routed = _put(
        arm,
        manual_clock,
        f"{NET}/routeTables/rt2",
        {
            "location": "eastus",
            "properties": {
                "routes": [
                    {
                        "name": "r1",
                        "properties": {"addressPrefix": "10.9.0.0/16", "nextHopType": "None"},
                    }
                ]
            },
        },
    )
    assert routed["properties"]["routes"][0]["id"] == f"{NET}/routeTables/rt2/routes/r1"


def test_vm_instance_view_defaults(arm: Arm, group: str, manual_clock: ManualClock) -> None:
    body = vm_body()
    body["properties"]["storageProfile"] = {
        "imageReference": {
            "publisher": "Canonical",
            "offer": "0001-com-ubuntu-server-jammy",
            "sku": "22_04-lts-gen2",
            "version": "latest",
        },
        "osDisk": {"name": "vm1-os", "createOption": "FromImage"},
    }
    vm = f"{COMPUTE}/virtualMachines/vm1"
    _put(arm, manual_clock, vm, body)
    view = arm.get(f"{vm}/instanceView").json()
    assert view["osName"] == "ubuntu"
    assert view["hyperVGeneration"] == "V2"
    assert view["vmAgent"]["statuses"][0]["displayStatus"] == "Ready"
    assert [d["name"] for d in view["disks"]] == ["vm1-os"]
    expanded = arm.get(vm, params={"$expand": "instanceView"}).json()
    assert expanded["properties"]["instanceView"]["vmAgent"] == view["vmAgent"]


def test_storage_defaults(arm: Arm, group: str, manual_clock: ManualClock) -> None:
    account = _put(
        arm,
        manual_clock,
        STORAGE,
        {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_GRS"}},
    )
    props = account["properties"]
    assert props["secondaryLocation"] == "westus"
    assert props["statusOfSecondary"] == "available"
    assert set(props["keyCreationTime"]) == {"key1", "key2"}
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["accessTier"] == "Hot"
    local = _put(
        arm,
        manual_clock,
        f"{RG}/providers/Microsoft.Storage/storageAccounts/store2",
        {"location": "eastus", "sku": {"name": "Standard_LRS"}},
    )
    assert "secondaryLocation" not in local["properties"]
