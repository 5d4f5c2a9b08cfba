"""Deployments run their resources through the client write path, in dependency order."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from arm_helpers import SUB, VNET, Arm, EmulatorWithABug, error_code

from armguard.clock import ManualClock
from armguard.emulator.server import serve
from armguard.testing import EmulatorHandle

DEPLOYMENTS = "providers/Microsoft.Resources/deployments"


def template(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": list(resources),
        "outputs": {
            "vnetId": {
                "type": "string",
                "value": "[resourceId('Microsoft.Network/virtualNetworks', 'vnet1')]",
            }
        },
    }


VNET_RES = {
    "type": "Microsoft.Network/virtualNetworks",
    "apiVersion": "2024-05-01",
    "name": "vnet1",
    "location": "[resourceGroup().location]",
    "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "a", "properties": {"addressPrefix": "10.0.0.0/24"}}],
    },
}
NSG_RES = {
    "type": "Microsoft.Network/networkSecurityGroups",
    "apiVersion": "2024-05-01",
    "name": "nsg1",
    "location": "eastus",
}
SUBNET_RES = {
    "type": "Microsoft.Network/virtualNetworks/subnets",
    "apiVersion": "2024-05-01",
    "name": "vnet1/b",
    "dependsOn": ["[resourceId('Microsoft.Network/virtualNetworks', 'vnet1')]"],
    "properties": {"addressPrefix": "10.0.1.0/24"},
}


def deploy(arm: Arm, group: str, name: str, *resources: dict[str, Any]) -> Any:
    return arm.put(
        f"{group}/{DEPLOYMENTS}/{name}",
        {"properties": {"mode": "Incremental", "template": template(*resources)}},
    )


def test_deployment_runs_in_dependency_order(arm: Arm, served: EmulatorHandle, group: str) -> None:
    started = deploy(arm, group, "d1", VNET_RES, NSG_RES, SUBNET_RES)
    assert started.status_code == 201, started.text
    assert started.json()["properties"]["provisioningState"] == "Accepted"
    status_url = started.headers["Azure-AsyncOperation"]
    assert "/deployments/d1/operationStatuses/" in status_url
    assert arm.get(status_url).json()["status"] == "Running"
    assert (
        arm.get(f"{group}/{DEPLOYMENTS}/d1").json()["properties"]["provisioningState"] == "Running"
    )
    # The VNet and the NSG start together; the subnet waits for the VNet.
    assert arm.get(VNET).json()["properties"]["provisioningState"] == "Creating"
    assert arm.get(f"{VNET}/subnets/b").status_code == 404
    served.advance(5)
    assert arm.get(f"{VNET}/subnets/b").json()["properties"]["provisioningState"] == "Creating"
    served.advance(5)
    done = arm.get(status_url).json()
    assert done["status"] == "Succeeded"
    body = arm.get(f"{group}/{DEPLOYMENTS}/d1").json()
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["outputs"]["vnetId"]["value"].endswith("/virtualNetworks/vnet1")
    ops = arm.get(f"{group}/{DEPLOYMENTS}/d1/operations").json()["value"]
    assert {o["properties"]["targetResource"]["resourceName"] for o in ops} == {
        "vnet1",
        "nsg1",
        "vnet1/b",
    } - {"vnet1/b"} | {"b"}
    assert all(o["properties"]["provisioningState"] == "Succeeded" for o in ops)
    listed = arm.get(f"{group}/{DEPLOYMENTS}").json()["value"]
    assert [d["name"] for d in listed] == ["d1"]


def test_deployment_holds_resources_like_a_client(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    deploy(arm, group, "d1", VNET_RES)
    served.advance(0.1)
    refused = arm.put(f"{VNET}/subnets/x", {"properties": {"addressPrefix": "10.0.7.0/24"}})
    assert refused.status_code == 409
    assert error_code(refused) == "AnotherOperationInProgress"
    status_url = refused.json()["error"]["message"].split("use uri: ")[1].rstrip(".")
    served.advance(10)
    assert arm.get(status_url).json()["status"] == "Succeeded"


def test_same_name_deployment_while_active_is_refused(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    deploy(arm, group, "d1", VNET_RES)
    again = deploy(arm, group, "d1", NSG_RES)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "DeploymentActive"
    assert error["message"].startswith(
        "Unable to edit or replace deployment 'd1': previous deployment from '"
    )
    assert error["message"].endswith(
        "Please see https://aka.ms/arm-deploy-resources for usage details."
    )
    served.advance(10)
    assert deploy(arm, group, "d1", NSG_RES).status_code == 200


def test_collision_fails_the_deployment_with_details(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(VNET, {"location": "eastus", "properties": {"subnets": []}})
    started = deploy(arm, group, "d1", {**VNET_RES})
    served.advance(0.1)
    failed = arm.get(started.headers["Azure-AsyncOperation"]).json()
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "DeploymentFailed"
    assert failed["error"]["details"][0]["code"] == "AnotherOperationInProgress"
    body = arm.get(f"{group}/{DEPLOYMENTS}/d1").json()
    assert body["properties"]["provisioningState"] == "Failed"
    ops = arm.get(f"{group}/{DEPLOYMENTS}/d1/operations").json()["value"]
    assert ops[0]["properties"]["statusMessage"]["error"]["code"] == "AnotherOperationInProgress"


def test_async_failure_is_wrapped(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.http.post(
        "/_armguard/faults",
        json={
            "match": {"resourceType": "Microsoft.Network/networkSecurityGroups"},
            "effect": {"failOperation": True},
        },
    )
    started = deploy(arm, group, "d1", NSG_RES)
    served.advance(10)
    error = arm.get(started.headers["Azure-AsyncOperation"]).json()["error"]
    assert error["code"] == "DeploymentFailed"
    assert error["details"][0]["code"] == "ResourceDeploymentFailure"


def test_cancel_and_invalid_templates(arm: Arm, served: EmulatorHandle, group: str) -> None:
    started = deploy(arm, group, "d1", VNET_RES, SUBNET_RES)
    served.advance(0.1)
    assert arm.post(f"{group}/{DEPLOYMENTS}/d1/cancel").status_code == 204
    assert arm.get(started.headers["Azure-AsyncOperation"]).json()["status"] == "Canceled"
    assert (
        arm.get(f"{group}/{DEPLOYMENTS}/d1").json()["properties"]["provisioningState"] == "Canceled"
    )
    assert arm.post(f"{group}/{DEPLOYMENTS}/d1/cancel").status_code == 409
    bad = arm.put(
        f"{group}/{DEPLOYMENTS}/d2",
        {
            "properties": {
                "mode": "Incremental",
                "template": {"resources": [{"type": "x", "name": "[concat(", "apiVersion": "1"}]},
            }
        },
    )
    assert bad.status_code == 400
    assert error_code(bad) == "InvalidTemplate"


def test_an_unexpected_step_failure_fails_the_deployment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    core = EmulatorWithABug(clock, seed=2)
    server = serve(core)
    arm = Arm(server.base_url, caller="pipeline@example.com")
    try:
        group = f"{SUB}/resourceGroups/rg1"
        arm.put(group, {"location": "eastus"})
        widget = {"type": EmulatorWithABug.BROKEN_TYPE, "apiVersion": "2024-01-01", "name": "w1"}
        with caplog.at_level(logging.ERROR, logger="armguard.emulator"):
            started = deploy(arm, group, "d1", NSG_RES, widget)
            assert started.status_code == 201, started.text
            assert arm.get(started.headers["Azure-AsyncOperation"]).json()["status"] == "Running"
        # The NSG started with the widget runs to its end; then the run ends (not Running for
        # ever), wrapped like any step failure.
        clock.advance(10)
        status = arm.get(started.headers["Azure-AsyncOperation"]).json()
        assert status["status"] == "Failed", status
        assert status["error"]["code"] == "DeploymentFailed"
        assert [d["code"] for d in status["error"]["details"]] == ["InternalServerError"]
        assert "provider bug" not in json.dumps(status)
        assert any("provider bug" in (r.exc_text or "") for r in caplog.records)
        ops = arm.get(f"{group}/{DEPLOYMENTS}/d1/operations").json()["value"]
        by_name = {o["properties"]["targetResource"]["resourceName"]: o for o in ops}
        assert by_name["w1"]["properties"]["provisioningState"] == "Failed"
        assert by_name["w1"]["properties"]["statusCode"] == "InternalServerError"
        # The broken step's write has its end event too, Failed, with the caller's identity.
        log = arm.get(
            f"{SUB}/providers/Microsoft.Insights/eventtypes/management/values",
            params={
                "$filter": "eventTimestamp ge '2020-01-01' and resourceUri eq "
                f"'{group}/providers/Microsoft.Cache/redis/w1'"
            },
        ).json()["value"]
        assert [(e["caller"], e["status"]["value"]) for e in reversed(log)] == [
            ("pipeline@example.com", "Started"),
            ("pipeline@example.com", "Failed"),
        ]
        assert log[0]["properties"]["statusCode"] == "InternalServerError"
        # Nothing is stuck: the same name deploys again.
        assert deploy(arm, group, "d1", NSG_RES).status_code == 200
    finally:
        arm.close()
        server.stop()
