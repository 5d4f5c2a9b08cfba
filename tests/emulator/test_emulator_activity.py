"""Every write, delete and action leaves Activity Log events, accepted or rejected."""

from __future__ import annotations

import json

from arm_helpers import SUB, VNET, Arm, vnet_body

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
