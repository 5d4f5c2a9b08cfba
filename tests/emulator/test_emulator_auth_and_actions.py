"""Caller identity from tokens; storage key actions; deployment and child deletes."""

from __future__ import annotations

import base64
import json

import pytest
from arm_helpers import NET, STORAGE, SUB, VNET, Arm, error_code, vnet_body

from armguard.emulator.auth import caller_of, decode_claims
from armguard.testing import EmulatorHandle


def _jwt(claims: dict[str, str]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"e30.{payload}.sig"


@pytest.mark.parametrize(
    ("claims", "caller"),
    [
        ({"upn": "u@x", "unique_name": "n@x", "appid": "app", "oid": "oid"}, "u@x"),
        ({"unique_name": "n@x", "appid": "app", "oid": "oid"}, "n@x"),
        ({"appid": "app", "oid": "oid"}, "app"),
        ({"oid": "oid"}, "oid"),
        ({}, "unknown"),
    ],
)
def test_caller_claim_precedence(claims: dict[str, str], caller: str) -> None:
    assert caller_of(decode_claims(_jwt(claims))) == caller


def test_opaque_tokens_are_accepted(served: EmulatorHandle) -> None:
    import httpx

    response = httpx.put(
        f"{served.base_url}{SUB}/resourcegroups/g?api-version=2024-03-01",
        json={"location": "eastus"},
        headers={"Authorization": "Bearer not-a-jwt"},
    )
    assert response.status_code == 201
    assert decode_claims("not-a-jwt") == {}
    assert decode_claims("a.%%%.c") == {}


def test_storage_keys_can_be_listed_and_regenerated(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(STORAGE, {"location": "eastus"})
    refused = arm.post(f"{STORAGE}/listKeys")
    assert error_code(refused) == "StorageAccountOperationInProgress"
    served.advance(20)
    keys = {k["keyName"]: k["value"] for k in arm.post(f"{STORAGE}/listKeys").json()["keys"]}
    assert set(keys) == {"key1", "key2"}
    rotated = arm.post(f"{STORAGE}/regenerateKey", {"keyName": "key1"}).json()["keys"]
    assert rotated[0]["value"] != keys["key1"]
    assert rotated[1]["value"] == keys["key2"]
    assert arm.post(f"{STORAGE}/regenerateKey", {"keyName": "key9"}).status_code == 400
    assert arm.post(f"{STORAGE}/explode").status_code == 404
    deleted = arm.delete(STORAGE)
    assert deleted.status_code == 200, "storage deletes are synchronous"
    assert arm.get(STORAGE).status_code == 404


def test_subnet_delete_is_an_operation_that_updates_the_vnet(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.put(VNET, vnet_body("a", "b"))
    served.advance(10)
    deleted = arm.delete(f"{VNET}/subnets/b")
    assert deleted.status_code == 202
    assert arm.get(f"{VNET}/subnets/b").json()["properties"]["provisioningState"] == "Deleting"
    served.advance(10)
    assert arm.get(deleted.headers["Location"]).status_code == 200
    assert [s["name"] for s in arm.get(VNET).json()["properties"]["subnets"]] == ["a"]
    arm.delete(VNET)
    served.advance(10)
    assert arm.get(f"{VNET}/subnets/a").status_code == 404
    assert arm.get(f"{NET}/virtualNetworks").json()["value"] == []


def test_deployment_delete_waits_for_the_run(arm: Arm, served: EmulatorHandle, group: str) -> None:
    url = f"{group}/providers/Microsoft.Resources/deployments/d1"
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            {
                "type": "Microsoft.Network/networkSecurityGroups",
                "apiVersion": "2024-05-01",
                "name": "n",
                "location": "eastus",
            }
        ],
    }
    assert (
        arm.put(url, {"properties": {"mode": "Incremental", "template": template}}).status_code
        == 201
    )
    busy = arm.delete(url)
    assert error_code(busy) == "DeploymentActive"
    served.advance(10)
    deleted = arm.delete(url)
    assert deleted.status_code == 202
    served.advance(5)
    assert arm.get(url).status_code == 404
    assert arm.get(f"{NET}/networkSecurityGroups/n").status_code == 200, (
        "deleting a deployment keeps its resources"
    )
