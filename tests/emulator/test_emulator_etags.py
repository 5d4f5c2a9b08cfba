"""ETags per the RPC table, in each provider's format and with its 412 wording."""

from __future__ import annotations

import json

import pytest
from arm_helpers import NET, STORAGE, VM, VNET, Arm, error_code, vm_body, vnet_body

from armguard.testing import EmulatorHandle


def test_network_etags_are_weak_guids_and_stale_ones_fail(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    created = arm.put(VNET, vnet_body())
    etag = created.json()["etag"]
    assert etag.startswith('W/"')
    assert len(etag) == 36 + 4
    served.advance(10)
    updated = arm.put(VNET, vnet_body(), headers={"If-Match": etag})
    assert updated.status_code == 200
    new_etag = updated.json()["etag"]
    assert new_etag != etag
    served.advance(10)
    stale = arm.put(VNET, vnet_body(), headers={"If-Match": etag})
    assert stale.status_code == 412
    error = stale.json()["error"]
    assert error["code"] == "PreconditionFailed"
    assert error["message"] == "Precondition failed."
    assert error["details"] == [
        {
            "code": "PreconditionFailedEtagMismatch",
            "message": f"Etag provided in if-match header {etag} does not match etag "
            f"{new_etag} of resource {VNET}",
            "details": [],
        }
    ]
    # Quoted without W/ works too (weak comparison).
    bare = new_etag.removeprefix("W/")
    assert arm.put(VNET, vnet_body(), headers={"If-Match": bare}).status_code == 200


def test_compute_etags_are_quoted_integers(arm: Arm, served: EmulatorHandle, group: str) -> None:
    assert arm.put(VM, vm_body()).json()["etag"] == '"1"'
    served.advance(60)
    assert arm.patch(VM, {"tags": {"a": "1"}}).json()["etag"] == '"2"'
    served.advance(60)
    stale = arm.patch(VM, {"tags": {"a": "2"}}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["message"] == (
        'Etag provided in if-match header "1" does not match etag "2" of resource.'
    )


def test_types_without_etags_ignore_conditions(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    created = arm.put(STORAGE, {"location": "eastus"})
    served.advance(20)
    assert "etag" not in arm.get(STORAGE).json()
    assert created.status_code == 202
    assert "etag" not in arm.get(group).json()


@pytest.mark.parametrize(
    "case",
    [
        ("PUT", False, None, None, 201),
        ("PUT", True, None, None, 200),
        ("PUT", False, "If-Match", "*", 412),
        ("PUT", True, "If-Match", "*", 200),
        ("PUT", False, "If-Match", "current", 412),
        ("PUT", True, "If-Match", "current", 200),
        ("PUT", True, "If-Match", "stale", 412),
        ("PUT", False, "If-None-Match", "*", 201),
        ("PUT", True, "If-None-Match", "*", 412),
        ("PATCH", False, None, None, 404),
        ("PATCH", True, None, None, 200),
        ("PATCH", True, "If-Match", "*", 200),
        ("PATCH", False, "If-Match", "stale", 404),
        ("PATCH", True, "If-Match", "current", 200),
        ("PATCH", True, "If-Match", "stale", 412),
        ("DELETE", False, None, None, 204),
        ("DELETE", True, None, None, 202),
        ("DELETE", False, "If-Match", "stale", 204),
        ("DELETE", True, "If-Match", "current", 202),
        ("DELETE", True, "If-Match", "stale", 412),
    ],
)
def test_rpc_etag_table_over_http(
    arm: Arm,
    served: EmulatorHandle,
    group: str,
    case: tuple[str, bool, str | None, str | None, int],
) -> None:
    method, exists, header, value, expected = case
    nsg = f"{NET}/networkSecurityGroups/nsg1"
    current = None
    if exists:
        current = arm.put(nsg, {"location": "eastus"}).json()["etag"]
        served.advance(10)
    headers = {}
    if header is not None:
        headers[header] = {"*": "*", "current": current or 'W/"x"', "stale": 'W/"stale"'}[
            value or "*"
        ]
    body = {"location": "eastus", "tags": {"k": "v"}}
    response = arm.request(method, nsg, None if method == "DELETE" else body, headers=headers)
    assert response.status_code == expected, response.text
    if expected == 412:
        assert error_code(response) == "PreconditionFailed"


@pytest.mark.parametrize(
    ("path", "body"),
    [(f"{NET}/networkSecurityGroups/nsg1", {"location": "eastus"}), (VM, vm_body())],
)
def test_412_names_the_header_that_failed(
    arm: Arm, served: EmulatorHandle, group: str, path: str, body: dict[str, object]
) -> None:
    current = arm.put(path, body).json()["etag"]
    served.advance(60)
    # If-Match matches; If-None-Match is what fails.
    refused = arm.put(path, body, headers={"If-Match": current, "If-None-Match": "*"})
    assert refused.status_code == 412
    text = json.dumps(refused.json()["error"])
    assert "if-none-match" in text
    assert "if-match header" not in text
    matching = arm.put(path, body, headers={"If-None-Match": current})
    assert matching.status_code == 412
    assert "if-none-match header" in json.dumps(matching.json()["error"])
    stale = arm.put(path, body, headers={"If-Match": '"0"', "If-None-Match": "*"})
    assert "if-match header" in json.dumps(stale.json()["error"])
