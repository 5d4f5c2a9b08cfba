"""Every write, delete and action leaves Activity Log events, accepted or rejected."""

from __future__ import annotations

import json

import pytest
from arm_helpers import API, RG, SUB, VM, VNET, Arm, EmulatorWithABug, api_version_for, vnet_body

from armguard.arm.errors import reason_phrase
from armguard.clock import ManualClock
from armguard.emulator.server import serve
from armguard.testing import EmulatorHandle

WINDOW = "eventTimestamp ge '2020-01-01T00:00:00Z' and eventTimestamp le '2100-01-01T00:00:00Z'"
LOG = f"{SUB}/providers/Microsoft.Insights/eventtypes/management/values"


def events(arm: Arm, extra: str = "") -> list[dict]:
    response = arm.get(LOG, params={"$filter": WINDOW + extra})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["value"]))


def test_accepted_conflicted_and_completed_writes_are_recorded(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    bob = Arm(served.base_url, caller="bob@example.com")
    arm.put(VNET, vnet_body(), headers={"x-ms-correlation-request-id": "corr-alice"})
    bob.put(
        f"{VNET}/subnets/b", {"properties": {}}, headers={"x-ms-correlation-request-id": "corr-bob"}
    )
    served.advance(10)
    mine = events(arm, f" and resourceUri eq '{VNET}'")
    assert [(e["caller"], e["status"]["value"]) for e in mine] == [
        ("alice@example.com", "Started"),
        ("alice@example.com", "Accepted"),
        ("alice@example.com", "Succeeded"),
    ]
    assert {e["correlationId"] for e in mine} == {"corr-alice"}
    assert mine[0]["operationName"]["value"] == "Microsoft.Network/virtualNetworks/write"
    assert len({e["operationId"] for e in mine}) == 1
    rejected = events(arm, " and correlationId eq 'corr-bob'")
    assert [e["status"]["value"] for e in rejected] == ["Started", "Failed"]
    failure = rejected[1]
    assert failure["caller"] == "bob@example.com"
    assert failure["properties"]["statusCode"] == "Conflict"
    assert json.loads(failure["properties"]["statusMessage"])["error"]["code"] == (
        "AnotherOperationInProgress"
    )
    bob.close()


def test_activity_log_filter_errors_are_400(arm: Arm) -> None:
    assert arm.get(LOG).status_code == 400
    assert arm.get(LOG, params={"$filter": "caller eq 'x'"}).status_code == 400


JSON_TYPE = {"Content-Type": "application/json"}
TOO_LARGE = b"x" * (4 * 1024 * 1024 + 1)

# (method, path, body, headers, with api-version, status, code, operation name suffix)
REFUSED_EARLY = [
    ("PUT", VNET, b"{not json", JSON_TYPE, True, 400, "InvalidRequestContent", "write"),
    ("PUT", VNET, b'"text"', JSON_TYPE, True, 400, "InvalidRequestContent", "write"),
    (
        "PUT",
        VNET,
        b"<x/>",
        {"Content-Type": "application/xml"},
        True,
        415,
        "UnsupportedMediaType",
        "write",
    ),
    ("PUT", VNET, TOO_LARGE, JSON_TYPE, True, 413, "RequestEntityTooLarge", "write"),
    ("PUT", VNET, b"{}", JSON_TYPE, False, 400, "MissingApiVersionParameter", "write"),
    ("DELETE", VNET, b"", {}, False, 400, "MissingApiVersionParameter", "delete"),
    ("POST", f"{VM}/start", b"{", JSON_TYPE, True, 400, "InvalidRequestContent", "start/action"),
]


@pytest.mark.parametrize("case", REFUSED_EARLY, ids=lambda c: f"{c[0]} {c[6]}")
def test_writes_refused_before_the_write_path_are_recorded(
    served: EmulatorHandle,
    arm: Arm,
    group: str,
    case: tuple[str, str, bytes, dict[str, str], bool, int, str, str],
) -> None:
    method, path, content, headers, with_api, status, code, operation = case
    bob = Arm(served.base_url, caller="bob@example.com")
    url = f"{path}?api-version={api_version_for(path)}" if with_api else path
    try:
        sent = bob.http.request(method, url, content=content, headers=headers)
    finally:
        bob.close()
    assert sent.status_code == status
    mine = events(arm, f" and resourceUri eq '{path.removesuffix('/start')}'")
    assert [(e["caller"], e["status"]["value"]) for e in mine] == [
        ("bob@example.com", "Started"),
        ("bob@example.com", "Failed"),
    ]
    failure = mine[1]
    assert failure["operationName"]["value"].endswith("/" + operation)
    assert failure["properties"]["statusCode"] == reason_phrase(status)
    assert json.loads(failure["properties"]["statusMessage"])["error"]["code"] == code
    assert failure["httpRequest"]["method"] == method


def test_a_path_that_is_no_resource_id_is_not_recorded(arm: Arm, group: str) -> None:
    before = len(events(arm))
    bad = arm.http.put(f"{RG}/providers/bad/x/y?api-version={API}", content=b"{")
    assert bad.status_code == 400
    assert len(events(arm)) == before


def test_an_emulator_failure_ends_the_started_event() -> None:
    server = serve(EmulatorWithABug(ManualClock(), seed=5))
    arm = Arm(server.base_url, caller="carol@example.com")
    try:
        arm.put(RG, {"location": "eastus"})
        widget = f"{RG}/providers/{EmulatorWithABug.BROKEN_TYPE}/w1"
        broken = arm.put(widget, {"location": "eastus"})
        assert broken.status_code == 500
        assert broken.json()["error"]["code"] == "InternalServerError"
        mine = events(arm, f" and resourceUri eq '{widget}'")
        assert [(e["caller"], e["status"]["value"]) for e in mine] == [
            ("carol@example.com", "Started"),
            ("carol@example.com", "Failed"),
        ]
        assert mine[1]["properties"]["statusCode"] == "InternalServerError"
        # The emulator keeps serving.
        assert arm.get(RG).status_code == 200
    finally:
        arm.close()
        server.stop()
