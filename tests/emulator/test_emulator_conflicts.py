"""Holds: a running operation blocks writes to its resource, parent, children, siblings
(network) and referenced resources; compute preempts; identical retries join."""

from __future__ import annotations

import httpx
import pytest
from arm_helpers import NET, STORAGE, VM, VNET, Arm, error_code, vm_body, vnet_body

from armguard.clock import ManualClock
from armguard.testing import EmulatorHandle, emulator


def test_subnet_write_during_vnet_write_is_refused_with_the_status_url(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    created = arm.put(VNET, vnet_body("a"))
    refused = arm.put(f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.0.1.0/24"}})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "AnotherOperationInProgress"
    status_url = created.headers["Azure-AsyncOperation"]
    assert error["message"] == (
        "Another operation on this or dependent resource is in progress. To retrieve status of "
        f"the operation use uri: {status_url}."
    )
    assert "Retry-After" not in refused.headers
    served.advance(10)
    assert arm.get(status_url).json()["status"] == "Succeeded"
    assert (
        arm.put(f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.0.1.0/24"}}).status_code
        == 201
    )


def test_parent_and_sibling_writes_collide_with_a_subnet_write(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(VNET, vnet_body("a", "b"))
    served.advance(10)
    assert (
        arm.put(f"{VNET}/subnets/a", {"properties": {"addressPrefix": "10.0.0.0/24"}}).status_code
        == 200
    )
    sibling = arm.put(f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.0.5.0/24"}})
    assert error_code(sibling) == "AnotherOperationInProgress"
    parent = arm.put(VNET, vnet_body("a", "b"))
    assert error_code(parent) == "AnotherOperationInProgress"
    delete = arm.delete(VNET)
    assert error_code(delete) == "AnotherOperationInProgress"
    # Unrelated resources in the same group are not held.
    other = arm.put(f"{NET}/virtualNetworks/vnet2", vnet_body())
    assert other.status_code == 201


def test_referenced_resources_are_held(arm: Arm, served: EmulatorHandle, group: str) -> None:
    nsg = f"{NET}/networkSecurityGroups/nsg1"
    arm.put(nsg, {"location": "eastus"})
    arm.put(VNET, vnet_body("a"))
    served.advance(10)
    associate = arm.put(
        f"{VNET}/subnets/a",
        {"properties": {"addressPrefix": "10.0.0.0/24", "networkSecurityGroup": {"id": nsg}}},
    )
    assert associate.status_code == 200
    refused = arm.put(nsg, {"location": "eastus", "tags": {"x": "1"}})
    assert refused.status_code == 409
    assert error_code(refused) == "AnotherOperationInProgress"
    served.advance(10)
    # And the other way round: a subnet write that references a busy NSG.
    arm.put(nsg, {"location": "eastus", "tags": {"x": "2"}})
    refused = arm.put(
        f"{VNET}/subnets/a",
        {"properties": {"addressPrefix": "10.0.0.0/24", "networkSecurityGroup": {"id": nsg}}},
    )
    assert error_code(refused) == "AnotherOperationInProgress"


def test_identical_put_joins_the_running_operation(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    first = arm.put(VNET, vnet_body("a"))
    again = arm.put(VNET, vnet_body("a"))
    assert again.status_code == first.status_code
    assert again.headers["Azure-AsyncOperation"] == first.headers["Azure-AsyncOperation"]
    different = arm.put(VNET, vnet_body("a", "b"))
    assert different.status_code == 409


def test_network_conflict_can_be_configured_as_429_retryable() -> None:
    settings = {"Microsoft.Network/*": {"conflict": "retryable"}}
    with emulator(clock=ManualClock(), type_settings=settings) as served:
        arm = Arm(served.base_url)
        arm.put(
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1",
            {"location": "eastus"},
        )
        arm.put(VNET, vnet_body())
        refused = arm.put(f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.0.1.0/24"}})
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "RetryableError"
        assert error["details"][0]["code"] == "RetryableErrorDueToAnotherOperation"
        assert "is updating resource" in error["details"][0]["message"]
        arm.close()


def test_storage_answers_its_own_conflict_code(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(STORAGE, {"location": "eastus"})
    refused = arm.put(STORAGE, {"location": "eastus", "tags": {"a": "b"}})
    assert refused.status_code == 409
    assert error_code(refused) == "StorageAccountOperationInProgress"


def test_compute_model_write_preempts_the_running_one(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    first = arm.put(VM, vm_body())
    second = arm.put(VM, {**vm_body(), "tags": {"v": "2"}})
    assert second.status_code == 200
    preempted = arm.get(first.headers["Azure-AsyncOperation"]).json()
    assert preempted["status"] == "Canceled"
    assert preempted["error"]["code"] == "OperationPreempted"
    assert preempted["error"]["message"] == (
        "Operation execution has been preempted by a more recent operation."
    )
    served.advance(60)
    assert arm.get(second.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    assert arm.get(VM).json()["tags"] == {"v": "2"}


def refused_during(arm: Arm, served: EmulatorHandle, running: str, action: str) -> httpx.Response:
    """``action`` posted to a new VM while its ``running`` action runs: 409 OperationNotAllowed."""
    arm.put(VM, vm_body())
    served.advance(60)
    assert arm.post(f"{VM}/{running}").status_code == 202
    refused = arm.post(f"{VM}/{action}")
    assert refused.status_code == 409
    assert error_code(refused) == "OperationNotAllowed"
    return refused


@pytest.mark.parametrize("action", ["powerOff", "restart", "redeploy"])
def test_what_needs_an_allocated_vm_is_refused_while_it_is_deallocated(
    arm: Arm, served: EmulatorHandle, group: str, action: str
) -> None:
    refused = refused_during(arm, served, "deallocate", action)
    assert refused.json()["error"]["message"].startswith(
        f"Operation '{action}' is not allowed on VM 'vm1' since the VM is either deallocated or "
        "marked to be deallocated."
    )
    served.advance(600)
    again = arm.post(f"{VM}/{action}")
    assert error_code(again) == "OperationNotAllowed"
    assert "either deallocated or marked to be deallocated" in again.text


def test_power_actions_that_collide_are_refused(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    refused = refused_during(arm, served, "powerOff", "start")
    assert (
        "An ongoing operation is changing power state of Virtual Machine vm1 to stopped"
        in refused.text
    )
    write = arm.patch(VM, {"tags": {"a": "1"}})
    assert write.status_code == 409
    assert "since another operation is in progress" in write.text
