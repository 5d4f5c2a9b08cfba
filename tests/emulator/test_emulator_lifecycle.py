"""Lifecycle rules: VM power states and resize, subnets in use, Failed resources."""

from __future__ import annotations

from arm_helpers import NET, VM, VNET, Arm, error_code, vm_body, vnet_body

from armguard.testing import EmulatorHandle


def power(arm: Arm) -> str:
    view = arm.get(f"{VM}/instanceView").json()
    codes = [s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/")]
    return codes[0].split("/", 1)[1]


def test_power_actions_move_through_transitional_states(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(VM, vm_body())
    assert power(arm) == "starting"
    served.advance(45)
    assert power(arm) == "running"
    for action, during, after in (
        ("powerOff", "stopping", "stopped"),
        ("start", "starting", "running"),
        ("deallocate", "deallocating", "deallocated"),
        ("start", "starting", "running"),
        ("restart", "starting", "running"),
    ):
        started = arm.post(f"{VM}/{action}")
        assert started.status_code == 202, started.text
        assert "Azure-AsyncOperation" in started.headers
        assert "Location" in started.headers
        assert power(arm) == during
        served.advance(40)
        assert power(arm) == after
        assert arm.get(started.headers["Location"]).status_code == 200
    expanded = arm.get(VM, params={"$expand": "instanceView"}).json()
    assert expanded["properties"]["instanceView"]["statuses"][1]["displayStatus"] == "VM running"


def test_senseless_power_actions_are_refused(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(VM, vm_body())
    served.advance(45)
    arm.post(f"{VM}/deallocate")
    served.advance(40)
    refused = arm.post(f"{VM}/powerOff")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        "Operation 'powerOff' is not allowed on VM 'vm1' since the VM is either deallocated or "
        "marked to be deallocated."
    )
    arm.post(f"{VM}/start")
    served.advance(40)
    arm.post(f"{VM}/powerOff")
    served.advance(40)
    restart = arm.post(f"{VM}/restart")
    assert restart.json()["error"]["message"] == (
        "The operation requires the VM to be running (or set to run)."
    )


def test_resize_needs_a_deallocated_vm(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(VM, vm_body("Standard_D2s_v5"))
    served.advance(45)
    resize = {"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}}
    refused = arm.patch(VM, resize)
    assert refused.status_code == 409
    assert error_code(refused) == "OperationNotAllowed"
    assert refused.json()["error"]["message"] == (
        "Unable to resize the VM because the requested size Standard_D4s_v5 is not available in "
        "the cluster where the VM is currently allocated. To resize your VM to Standard_D4s_v5 "
        "please deallocate (this is Stop operation in the Azure portal) and try the resize "
        "operation again. Read more on VM resizing strategy at https://aka.ms/azure-resizevm."
    )
    assert error_code(arm.put(VM, vm_body("Standard_D4s_v5"))) == "OperationNotAllowed"
    arm.post(f"{VM}/deallocate")
    served.advance(40)
    resized = arm.patch(VM, resize)
    assert resized.status_code == 200
    served.advance(40)
    assert arm.get(VM).json()["properties"]["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
    assert power(arm) == "deallocated"


def _nic(arm: Arm, subnet: str) -> None:
    nic = {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [{"name": "ip1", "properties": {"subnet": {"id": subnet}}}]
        },
    }
    assert arm.put(f"{NET}/networkInterfaces/nic1", nic).status_code == 201


def test_subnet_in_use_cannot_be_deleted(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(VNET, vnet_body("a", "b"))
    served.advance(10)
    _nic(arm, f"{VNET}/subnets/a")
    served.advance(10)
    refused = arm.delete(f"{VNET}/subnets/a")
    assert refused.status_code == 400
    assert error_code(refused) == "InUseSubnetCannotBeDeleted"
    assert "nic1/ipConfigurations/ip1" in refused.text
    # A VNet PUT replaces the subnet list: omitting the used subnet fails, the unused one goes.
    omitted = arm.put(VNET, vnet_body("b"))
    assert error_code(omitted) == "InUseSubnetCannotBeDeleted"
    replaced = arm.put(VNET, vnet_body("a"))
    assert replaced.status_code == 200
    served.advance(10)
    names = [s["name"] for s in arm.get(VNET).json()["properties"]["subnets"]]
    assert names == ["a"]
    assert arm.get(f"{VNET}/subnets/b").status_code == 404


def test_subnet_put_appears_in_its_vnet_and_moves_its_etag(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(VNET, vnet_body("a"))
    served.advance(10)
    before = arm.get(VNET).json()["etag"]
    arm.put(f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.0.9.0/24"}})
    vnet = arm.get(VNET).json()
    assert [s["name"] for s in vnet["properties"]["subnets"]] == ["a", "b"]
    assert vnet["etag"] != before
    listed = arm.get(f"{VNET}/subnets").json()["value"]
    assert [s["name"] for s in listed] == ["a", "b"]
    missing_parent = arm.put(f"{NET}/virtualNetworks/none/subnets/x", {"properties": {}})
    assert missing_parent.status_code == 404
    assert error_code(missing_parent) == "ParentResourceNotFound"


def test_a_failed_resource_accepts_a_new_put(arm: Arm, served: EmulatorHandle, group: str) -> None:
    rule = {
        "match": {"method": "PUT", "resourceType": "Microsoft.Network/virtualNetworks"},
        "effect": {"failOperation": True, "code": "InternalServerError", "message": "boom"},
        "schedule": {"firstN": 1},
    }
    assert arm.http.post("/_armguard/faults", json=rule).status_code == 201
    created = arm.put(VNET, vnet_body())
    served.advance(10)
    failed = arm.get(created.headers["Azure-AsyncOperation"]).json()
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "InternalServerError"
    assert arm.get(VNET).json()["properties"]["provisioningState"] == "Failed"
    retried = arm.put(VNET, vnet_body())
    assert retried.status_code == 200
    served.advance(10)
    assert arm.get(VNET).json()["properties"]["provisioningState"] == "Succeeded"
