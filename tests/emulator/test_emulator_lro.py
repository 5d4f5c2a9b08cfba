"""Long-running operations: status documents, Location results, Retry-After, the clock."""

from __future__ import annotations

from arm_helpers import RG, STORAGE, VM, VNET, Arm, vm_body, vnet_body

from armguard.clock import ManualClock
from armguard.testing import EmulatorHandle, emulator


def test_network_put_runs_on_the_clock(arm: Arm, served: EmulatorHandle, group: str) -> None:
    created = arm.put(VNET, vnet_body("a"))
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    status_url = created.headers["Azure-AsyncOperation"]
    location_url = created.headers["Location"]
    assert status_url.startswith(served.base_url + "/subscriptions/")
    assert "/providers/Microsoft.Network/locations/eastus/operations/" in status_url
    assert created.headers["x-ms-request-id"] in status_url
    assert 1 <= int(created.headers["Retry-After"]) <= 10
    running = arm.get(status_url)
    assert running.status_code == 200
    assert running.json()["status"] == "InProgress"
    assert int(running.headers["Retry-After"]) >= 1
    assert arm.get(location_url).status_code == 202
    served.advance(4.9)
    assert arm.get(status_url).json()["status"] == "InProgress"
    served.advance(0.2)
    done = arm.get(status_url).json()
    assert done["status"] == "Succeeded"
    assert done["endTime"] >= done["startTime"]
    final = arm.get(location_url)
    assert final.status_code == 200
    assert final.json()["properties"]["provisioningState"] == "Succeeded"
    assert (
        arm.get(VNET).json()["properties"]["subnets"][0]["properties"]["provisioningState"]
        == "Succeeded"
    )
    # Status URLs keep answering after the operation ends.
    assert arm.get(status_url).json()["status"] == "Succeeded"


def test_unknown_operation_is_a_404(arm: Arm, served: EmulatorHandle) -> None:
    url = "/subscriptions/s/providers/Microsoft.Network/locations/eastus/operations/nope"
    response = arm.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "OperationNotFound"


def test_storage_create_answers_202_with_both_urls(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    created = arm.put(
        STORAGE.replace("store1", "acct1"), {"location": "eastus", "sku": {"name": "Standard_LRS"}}
    )
    assert created.status_code == 202
    assert created.content == b""
    assert "Azure-AsyncOperation" in created.headers
    assert "Location" in created.headers
    assert arm.get(created.headers["Location"]).status_code == 202
    served.advance(15)
    final = arm.get(created.headers["Location"])
    assert final.status_code == 200
    assert final.json()["name"] == "acct1"


def test_time_scale_shortens_every_operation() -> None:
    clock = ManualClock()
    with emulator(clock=clock, time_scale=0.01) as served:
        arm = Arm(served.base_url)
        arm.put("/subscriptions/s/resourcegroups/rg1", {"location": "eastus"})
        vnet = VNET.replace("00000000-0000-0000-0000-000000000001", "s")
        created = arm.put(vnet, vnet_body())
        assert created.headers["Retry-After"] == "1", "never 0: the SDK would wait 30 s"
        clock.advance(0.05)
        assert arm.get(created.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
        arm.close()


def test_time_scale_zero_completes_at_first_poll() -> None:
    with emulator(time_scale=0) as served:
        arm = Arm(served.base_url)
        arm.put("/subscriptions/s/resourcegroups/rg1", {"location": "eastus"})
        vnet = VNET.replace("00000000-0000-0000-0000-000000000001", "s")
        created = arm.put(vnet, vnet_body())
        assert arm.get(created.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
        arm.close()


def test_operation_progress_is_reported(arm: Arm, served: EmulatorHandle, group: str) -> None:
    created = arm.put(VNET, vnet_body())
    served.advance(2.5)
    doc = arm.get(created.headers["Azure-AsyncOperation"]).json()
    assert doc["percentComplete"] == 50.0
    assert doc["name"] == created.headers["x-ms-request-id"]


def test_the_location_url_honours_the_retry_after_cap() -> None:
    with emulator(clock=ManualClock(), retry_after_max=2) as served:
        arm = Arm(served.base_url)
        arm.put(RG, {"location": "eastus"})
        created = arm.put(VM, vm_body())
        assert created.headers["Retry-After"] == "2"
        status = arm.get(created.headers["Azure-AsyncOperation"])
        assert status.headers["Retry-After"] == "2"
        running = arm.get(created.headers["Location"])
        assert running.status_code == 202
        assert running.headers["Retry-After"] == "2", "the VM create has 45 s to go"
        arm.close()
