"""Serving surface: resource groups, generic resources, listing, routing, auth, api-version."""

from __future__ import annotations

import json

import httpx
from arm_helpers import RG, SUB, Arm, api_version_for, error_code

from armguard.testing import EmulatorHandle, emulator_fixture


def test_resource_group_crud_keeps_callers_casing(arm: Arm) -> None:
    created = arm.put(
        f"{SUB}/resourcegroups/MyGroup", {"location": "westeurope", "tags": {"a": "1"}}
    )
    assert created.status_code == 201
    assert created.json()["name"] == "MyGroup"
    assert created.json()["properties"]["provisioningState"] == "Succeeded"
    again = arm.put(f"{SUB}/resourceGroups/mygroup", {"location": "westeurope"})
    assert again.status_code == 200
    # The casing the caller last supplied is kept.
    assert arm.get(f"{SUB}/resourceGroups/MYGROUP").json()["name"] == "mygroup"
    patched = arm.patch(f"{SUB}/resourcegroups/mygroup", {"tags": {"b": "2"}})
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"b": "2"}
    assert arm.request("HEAD", f"{SUB}/resourcegroups/mygroup").status_code == 204
    assert arm.request("HEAD", f"{SUB}/resourcegroups/other").status_code == 404
    listed = arm.get(f"{SUB}/resourcegroups").json()["value"]
    assert [g["name"] for g in listed] == ["mygroup"]


def test_group_requires_location(arm: Arm) -> None:
    response = arm.put(f"{SUB}/resourcegroups/g", {})
    assert response.status_code == 400
    assert error_code(response) == "LocationRequired"


def test_missing_group_and_resource_give_arm_404s(arm: Arm, group: str) -> None:
    missing_group = arm.get(f"{SUB}/resourceGroups/nope/providers/Microsoft.Web/sites/s")
    assert missing_group.status_code == 404
    assert error_code(missing_group) == "ResourceGroupNotFound"
    assert "Resource group 'nope' could not be found." in missing_group.json()["error"]["message"]
    missing = arm.get(f"{group}/providers/Microsoft.Web/sites/s")
    assert missing.status_code == 404
    assert error_code(missing) == "ResourceNotFound"
    assert "The Resource 'Microsoft.Web/sites/s' under resource group 'rg1'" in missing.text
    patch_missing = arm.patch(f"{group}/providers/Microsoft.Web/sites/s", {"tags": {}})
    assert patch_missing.status_code == 404
    assert error_code(patch_missing) == "PatchResourceNotFound"
    assert patch_missing.headers["x-ms-failure-cause"] == "gateway"
    assert arm.delete(f"{group}/providers/Microsoft.Web/sites/s").status_code == 204


def test_generic_resource_put_get_patch_list(arm: Arm, served: EmulatorHandle, group: str) -> None:
    site = f"{group}/providers/Microsoft.Web/sites/site1"
    created = arm.put(site, {"location": "eastus", "properties": {"a": 1}, "tags": {"t": "1"}})
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    served.advance(60)
    body = arm.get(site).json()
    assert body["properties"] == {"a": 1, "provisioningState": "Succeeded"}
    assert body["type"] == "Microsoft.Web/sites"
    patched = arm.patch(site, {"properties": {"b": 2}, "tags": {"u": "2"}})
    assert patched.status_code == 200
    served.advance(60)
    body = arm.get(site).json()
    assert body["properties"]["a"] == 1
    assert body["properties"]["b"] == 2
    assert body["tags"] == {"u": "2"}, "PATCH replaces the tag set"
    arm.put(f"{group}/providers/Microsoft.Storage/storageAccounts/acct1", {"location": "eastus"})
    in_group = arm.get(f"{group}/resources").json()["value"]
    assert {r["name"] for r in in_group} == {"site1", "acct1"}
    by_type = arm.get(f"{group}/providers/Microsoft.Web/sites").json()["value"]
    assert [r["name"] for r in by_type] == ["site1"]
    sub_wide = arm.get(f"{SUB}/providers/Microsoft.Web/sites").json()["value"]
    assert [r["id"] for r in sub_wide] == [site]
    filtered = arm.get(
        f"{SUB}/resources",
        params={"$filter": "resourceType eq 'Microsoft.Storage/storageAccounts'"},
    ).json()["value"]
    assert [r["name"] for r in filtered] == ["acct1"]


def test_location_is_immutable(arm: Arm, served: EmulatorHandle, group: str) -> None:
    site = f"{group}/providers/Microsoft.Web/sites/site1"
    arm.put(site, {"location": "eastus"})
    served.advance(60)
    moved = arm.put(site, {"location": "westus"})
    assert moved.status_code == 409
    assert error_code(moved) == "PropertyChangeNotAllowed"


def test_group_delete_is_one_operation_that_cascades(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    site = f"{group}/providers/Microsoft.Web/sites/site1"
    arm.put(site, {"location": "eastus"})
    served.advance(60)
    deleted = arm.delete(group)
    assert deleted.status_code == 202
    assert deleted.headers["Location"].startswith(served.base_url)
    assert int(deleted.headers["Retry-After"]) >= 1
    assert arm.get(group).json()["properties"]["provisioningState"] == "Deleting"
    blocked = arm.put(f"{group}/providers/Microsoft.Web/sites/site2", {"location": "eastus"})
    assert blocked.status_code == 409
    assert error_code(blocked) == "ResourceGroupBeingDeleted"
    assert arm.get(deleted.headers["Location"]).status_code == 202
    served.advance(60)
    assert arm.get(deleted.headers["Location"]).status_code == 200
    assert arm.get(deleted.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    assert arm.get(group).status_code == 404
    assert served.core.store.all_resources() == []


def test_subscriptions_are_implicit(arm: Arm) -> None:
    response = arm.get("/subscriptions/any-sub")
    assert response.status_code == 200
    assert response.json()["subscriptionId"] == "any-sub"


def test_authentication_is_required(served: EmulatorHandle) -> None:
    response = httpx.get(f"{served.base_url}{RG}?api-version={api_version_for(RG)}")
    assert response.status_code == 401
    assert error_code(response) == "AuthenticationFailed"
    assert "insufficient_claims" not in response.headers.get("WWW-Authenticate", "")
    basic = httpx.get(
        f"{served.base_url}{RG}?api-version={api_version_for(RG)}",
        headers={"Authorization": "Basic abc"},
    )
    assert basic.status_code == 401


def test_api_version_is_required_and_well_formed(arm: Arm, group: str) -> None:
    missing = arm.http.get(group)
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "code": "MissingApiVersionParameter",
        "message": "The api-version query parameter (?api-version=) is required for all requests.",
        "details": [],
    }
    bad = arm.http.get(group, params={"api-version": "latest"})
    assert bad.status_code == 400
    assert error_code(bad) == "InvalidApiVersionParameter"
    for good in ("2026-09-01", "2021-04-01"):
        assert arm.http.get(group, params={"api-version": good}).status_code == 200


def test_arm_response_headers(arm: Arm, group: str) -> None:
    read = arm.get(group, headers={"x-ms-correlation-request-id": "corr-1"})
    assert read.headers["x-ms-correlation-request-id"] == "corr-1"
    assert read.headers["x-ms-request-id"]
    assert read.headers["x-ms-ratelimit-remaining-subscription-reads"]
    assert read.headers["x-ms-routing-request-id"].endswith(":corr-1")
    write = arm.patch(group, {"tags": {}})
    assert write.headers["x-ms-ratelimit-remaining-subscription-writes"]
    gone = arm.delete(f"{group}/providers/Microsoft.Web/sites/none")
    assert gone.headers["x-ms-ratelimit-remaining-subscription-deletes"]


def test_state_dump_and_load_round_trip(arm: Arm, served: EmulatorHandle, group: str) -> None:
    arm.put(f"{group}/providers/Microsoft.Web/sites/s1", {"location": "eastus"})
    state = arm.http.get("/_armguard/state").json()
    assert arm.http.post("/_armguard/reset").status_code == 200
    assert arm.get(group).status_code == 404
    loaded = arm.http.post("/_armguard/state", content=json.dumps(state))
    assert loaded.status_code == 200, loaded.text
    assert arm.get(f"{group}/providers/Microsoft.Web/sites/s1").status_code == 200
    bad = arm.http.post("/_armguard/state", content=b'{"format": "other"}')
    assert bad.status_code == 400


served_by_fixture = emulator_fixture(time_scale=0, seed=5)


def test_fixture_factory_serves_a_fresh_emulator(served_by_fixture: EmulatorHandle) -> None:
    arm = Arm(served_by_fixture.base_url)
    assert arm.put(RG, {"location": "eastus"}).status_code == 201
    assert served_by_fixture.core.time_scale == 0
    arm.close()


def test_deletes_of_missing_things(arm: Arm, group: str) -> None:
    assert arm.delete(f"{group}/providers/Microsoft.Web/sites/none").status_code == 204
    gone_group = arm.delete(f"{SUB}/resourceGroups/none")
    assert gone_group.status_code == 404
    assert error_code(gone_group) == "ResourceGroupNotFound"
    in_gone_group = arm.delete(f"{SUB}/resourceGroups/none/providers/Microsoft.Web/sites/s")
    assert error_code(in_gone_group) == "ResourceGroupNotFound"
