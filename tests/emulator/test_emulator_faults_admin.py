"""Fault rules through the admin API, applied before semantics; reset, seed, health, clock."""

from __future__ import annotations

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
