"""Fault rules through the admin API, applied before semantics; reset, seed, health, clock."""

from __future__ import annotations

import pytest
from arm_helpers import RG, VNET, Arm, vnet_body

from armguard.testing import EmulatorHandle


def test_error_fault_is_applied_then_recorded(arm: Arm, group: str) -> None:
    rule = {
        "match": {"method": "PUT", "resourceType": "Microsoft.Network/virtualNetworks"},
        "effect": {
            "status": 429,
            "code": "TooManyRequests",
            "message": "slow down",
            "retryAfter": 1,
        },
        "schedule": {"firstN": 1},
    }
    created = arm.http.post("/_armguard/faults", json=rule)
    assert created.status_code == 201
    rule_id = created.json()["id"]
    throttled = arm.put(VNET, vnet_body())
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert arm.put(VNET, vnet_body()).status_code == 201
    applied = arm.http.get("/_armguard/faults/applied").json()["value"]
    assert [a["ruleId"] for a in applied] == [rule_id]
    assert arm.http.delete(f"/_armguard/faults/{rule_id}").status_code == 200
    assert arm.http.get("/_armguard/faults").json()["rules"] == []


def test_stuck_operation_stays_running_then_fails(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    arm.http.post(
        "/_armguard/faults", json={"match": {"method": "PUT"}, "effect": {"stuckFor": 300}}
    )
    created = arm.put(VNET, vnet_body())
    served.advance(100)
    assert arm.get(created.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress"
    served.advance(200)
    failed = arm.get(created.headers["Azure-AsyncOperation"]).json()
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "OperationTimedOut"


def test_latency_fault_delays_the_answer(arm: Arm, group: str) -> None:
    arm.http.post(
        "/_armguard/faults", json={"match": {"method": "GET"}, "effect": {"latency": 0.3}}
    )
    response = arm.get(group)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3


def test_reset_seed_health_and_clock(arm: Arm, served: EmulatorHandle, group: str) -> None:
    health = arm.http.get("/_armguard/health").json()
    assert health["status"] == "ok"
    assert health["manualClock"] is True
    before = served.clock.now()
    assert arm.http.post("/_armguard/clock/advance", json={"seconds": 5}).status_code == 200
    assert served.clock.now() == before + 5
    assert arm.http.post("/_armguard/seed", json={"seed": 42}).status_code == 200
    etags = []
    for _ in range(2):
        arm.http.post("/_armguard/reset")
        assert arm.get(RG).status_code == 404
        arm.put(RG, {"location": "eastus"})
        etags.append(arm.put(VNET, vnet_body()).json()["etag"])
    assert etags[0] == etags[1], "a reset restarts the seeded sequence"


def test_fault_rejections_are_in_the_activity_log(arm: Arm, group: str) -> None:
    arm.http.post(
        "/_armguard/faults",
        json={"match": {"method": "PUT"}, "effect": {"status": 503, "code": "ServiceUnavailable"}},
    )
    assert arm.put(VNET, vnet_body()).status_code == 503
    window = "eventTimestamp ge '2020-01-01T00:00:00Z'"
    log = arm.get(
        "/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Insights/eventtypes/management/values",
        params={"$filter": f"{window} and resourceUri eq '{VNET}'"},
    ).json()["value"]
    assert [e["status"]["value"] for e in log] == ["Failed", "Started"]
    assert log[0]["properties"]["statusCode"] == "ServiceUnavailable"


@pytest.mark.parametrize(
    "body",
    [
        b'{"seconds": 1e308}',
        b'{"seconds": Infinity}',
        b'{"seconds": NaN}',
        b'{"seconds": -1}',
        b'{"seconds": 1e400}',
        b'{"seconds": 400000000}',
        b'{"seconds": "5"}',
        b"[1]",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_clock_advance_refuses_what_would_break_time(
    arm: Arm, served: EmulatorHandle, group: str, body: bytes
) -> None:
    before = served.clock.now()
    refused = arm.http.post("/_armguard/clock/advance", content=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "InvalidRequestContent"
    assert served.clock.now() == before
    # Every later request still renders its timestamps.
    assert arm.get(RG).status_code == 200
    assert arm.put(VNET, vnet_body()).status_code == 201


def test_clock_advance_stops_before_the_year_10000(arm: Arm, served: EmulatorHandle) -> None:
    ten_years = 10 * 365.25 * 24 * 3600
    while served.clock.now() + ten_years < 253_370_000_000:
        served.advance(ten_years)
    refused = arm.http.post("/_armguard/clock/advance", json={"seconds": ten_years})
    assert refused.status_code == 400
    assert "9999" in refused.json()["error"]["message"]
    assert arm.http.get("/_armguard/health").status_code == 200


FORMAT = "armguard-emulator-state/1"


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"resources": 5}, '"format"'),
        ({"format": FORMAT, "resources": 5}, "'resources'"),
        ({"format": FORMAT, "events": "x"}, "'events'"),
        ({"format": FORMAT, "now": "x"}, "'now'"),
        ({"format": FORMAT, "resources": [5]}, "resources[0]"),
        ({"format": FORMAT, "resources": [{"id": RG}]}, "resources[0].body"),
        ({"format": FORMAT, "resources": [{"id": RG, "body": {"tags": "x"}}]}, "'tags'"),
        (
            {"format": FORMAT, "resources": [{"id": VNET, "body": {}, "createdAt": "x"}]},
            "resources[0].createdAt",
        ),
        (
            {"format": FORMAT, "resources": [{"id": RG, "body": {}}, {"id": RG, "body": {}}]},
            "resources[1] repeats",
        ),
        ({"format": FORMAT, "operations": [{"id": "x"}]}, "operations[0].kind"),
        ({"format": FORMAT, "activityLog": "x"}, "activityLog"),
        ({"format": FORMAT, "activityLog": [{"eventTimestamp": "soon"}]}, "activityLog: event 0"),
    ],
)
def test_a_bad_state_document_is_refused_and_changes_nothing(
    arm: Arm, group: str, document: dict[str, object], named: str
) -> None:
    arm.put(VNET, vnet_body("a"))
    before = arm.http.get("/_armguard/state").json()
    refused = arm.http.post("/_armguard/state", json=document)
    assert refused.status_code == 400, refused.text
    assert named in refused.json()["error"]["message"]
    assert arm.http.get("/_armguard/state").json() == before
    assert arm.get(VNET).status_code == 200


def test_fault_durations_are_bounded(arm: Arm) -> None:
    for effect in ({"latency": 1e308}, {"stuckFor": 1e308}, {"status": 429, "retryAfter": 1e12}):
        refused = arm.http.post("/_armguard/faults", json={"effect": effect})
        assert refused.status_code == 400, refused.text
    assert arm.http.get("/_armguard/faults").json()["rules"] == []


def test_operation_faults_apply_only_to_requests_that_start_one(
    arm: Arm, served: EmulatorHandle, group: str
) -> None:
    never = {"match": {"method": "GET"}, "effect": {"failOperation": True}}
    assert arm.http.post("/_armguard/faults", json=never).status_code == 400
    rule = {
        "match": {"method": "PUT"},
        "effect": {"failOperation": True},
        "schedule": {"firstN": 1},
    }
    assert arm.http.post("/_armguard/faults", json=rule).status_code == 201
    # A lock PUT is synchronous: it starts no operation, so the rule does not fire on it.
    lock = f"{RG}/providers/Microsoft.Authorization/locks/l1"
    assert arm.put(lock, {"properties": {"level": "CanNotDelete"}}).status_code == 201
    assert arm.http.get("/_armguard/faults/applied").json()["value"] == []
    created = arm.put(VNET, vnet_body())
    served.advance(10)
    assert arm.get(created.headers["Azure-AsyncOperation"]).json()["status"] == "Failed"
    applied = arm.http.get("/_armguard/faults/applied").json()["value"]
    assert [a["resourceId"] for a in applied] == [VNET]
