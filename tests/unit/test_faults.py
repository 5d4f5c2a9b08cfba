from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from armguard.clock import ManualClock
from armguard.emulator.faults import (
    AppliedFault,
    FaultEffect,
    FaultEngine,
    FaultMatch,
    FaultRule,
    FaultSchedule,
)

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
SUBNET = f"{VNET}/subnets/web"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/st1"


def hit(
    engine: FaultEngine,
    resource_id: str = VNET,
    method: str = "PUT",
    operation: str = "write",
    path: str | None = None,
) -> str | None:
    resource_type = None
    if "/providers/" in resource_id:
        tail = resource_id.split("/providers/", 1)[1].split("/")
        resource_type = "/".join([tail[0], *tail[1::2]])
    applied = engine.match(
        method=method,
        resource_id=resource_id,
        resource_type=resource_type,
        operation=operation,
        path=path or f"{resource_id}?api-version=2024-05-01",
    )
    return None if applied is None else applied.rule_id


def test_match_fields_each_narrow_the_rule() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule({"id": "m", "match": {"method": "delete"}, "effect": {"status": 500}})
    engine.add_rule(
        {
            "id": "t",
            "match": {"resourceType": "microsoft.network/VIRTUALNETWORKS/subnets"},
            "effect": {"status": 429, "retryAfter": 3},
        }
    )
    engine.add_rule(
        {"id": "g", "match": {"idPattern": "*/STORAGEACCOUNTS/st*"}, "effect": {"latency": 0.5}}
    )
    engine.add_rule({"id": "a", "match": {"operation": "deallocate"}, "effect": {"status": 409}})
    engine.add_rule(
        {"id": "any-action", "match": {"operation": "action"}, "effect": {"status": 503}}
    )
    assert hit(engine, VNET) is None
    assert hit(engine, VNET, method="DELETE", operation="delete") == "m"
    assert hit(engine, SUBNET) == "t"
    assert hit(engine, STORAGE, method="GET", operation="read") == "g"
    assert hit(engine, VM, method="POST", operation="deallocate") == "a"
    # An action name also matches on the request path when the caller reports "action".
    assert hit(engine, VM, method="POST", operation="action", path=f"{VM}/deallocate?x=1") == "a"
    assert hit(engine, VM, method="POST", operation="restart") == "any-action"
    assert hit(engine, VM, method="GET", operation="read") is None


def test_first_matching_rule_that_fires_wins_and_is_recorded() -> None:
    clock = ManualClock()
    engine = FaultEngine(clock)
    engine.add_rule({"id": "once", "effect": {"status": 500}, "schedule": {"firstN": 1}})
    engine.add_rule({"id": "always", "effect": {"latency": 0.1}})
    assert hit(engine) == "once"
    clock.advance(2)
    assert hit(engine) == "always"
    applied = engine.applied()
    assert [a.rule_id for a in applied] == ["once", "always"]
    assert applied[0].at == "2026-01-01T00:00:00.0000000Z"
    assert applied[1].at == "2026-01-01T00:00:02.0000000Z"
    assert applied[0].method == "PUT"
    assert applied[0].resource_id == VNET
    assert applied[0].operation == "write"
    assert applied[0].effect == FaultEffect(status=500)


def test_after_n_and_first_n_select_a_slice_of_matches() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule(
        {"id": "r", "effect": {"status": 500}, "schedule": {"after_n": 2, "first_n": 3}}
    )
    fired = [hit(engine) == "r" for _ in range(8)]
    assert fired == [False, False, True, True, True, False, False, False]
    counters = engine.to_json()["rules"][0]
    assert counters["matched"] == 8
    assert counters["fired"] == 3


def test_window_is_relative_to_rule_creation_on_engine_clock() -> None:
    clock = ManualClock()
    engine = FaultEngine(clock)
    clock.advance(100)  # the window starts when the rule is added, not when the engine is
    engine.add_rule(
        {"id": "w", "effect": {"status": 503}, "schedule": {"windowStart": 10, "windowEnd": 20}}
    )
    assert hit(engine) is None
    clock.advance(10)
    assert hit(engine) == "w"
    clock.advance(9.5)
    assert hit(engine) == "w"
    clock.advance(0.5)
    assert hit(engine) is None


def test_window_outside_requests_do_not_count_towards_after_n() -> None:
    clock = ManualClock()
    engine = FaultEngine(clock)
    engine.add_rule(
        {"id": "w", "effect": {"status": 503}, "schedule": {"windowStart": 5, "afterN": 1}}
    )
    assert [hit(engine) for _ in range(3)] == [None, None, None]
    clock.advance(5)
    assert [hit(engine) for _ in range(2)] == [None, "w"]


def sequence(seed: int, requests: int = 200) -> list[tuple[int, str | None]]:
    engine = FaultEngine(ManualClock(), seed=seed)
    engine.add_rule({"id": "p30", "effect": {"status": 500}, "schedule": {"probability": 0.3}})
    engine.add_rule({"id": "p50", "effect": {"status": 429}, "schedule": {"probability": 0.5}})
    out = [(n, hit(engine)) for n in range(requests)]
    return [(n, r) for n, r in out if r is not None]


def test_same_seed_same_faults_different_seed_differs() -> None:
    first = sequence(42)
    assert first == sequence(42)
    assert first != sequence(43)
    fired30 = sum(1 for _, r in first if r == "p30")
    # Loose bounds: 200 draws at p=0.3 land inside these with overwhelming probability.
    assert 30 <= fired30 <= 90
    assert {r for _, r in first} == {"p30", "p50"}


def test_seed_and_reset_restart_the_sequence() -> None:
    engine = FaultEngine(ManualClock(), seed=1)
    rule = {"id": "p", "effect": {"status": 500}, "schedule": {"probability": 0.5}}
    engine.add_rule(rule)
    first = [hit(engine) for _ in range(50)]
    engine.seed(1)
    assert [hit(engine) for _ in range(50)] == first
    engine.reset()
    assert engine.rules() == []
    assert engine.applied() == []
    engine.add_rule(rule)
    assert [hit(engine) for _ in range(50)] == first
    engine.seed(2)
    engine.reset()
    engine.add_rule(rule)
    assert [hit(engine) for _ in range(50)] != first


def test_probability_zero_never_fires() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule({"effect": {"status": 500}, "schedule": {"probability": 0}})
    assert all(hit(engine) is None for _ in range(100))


def test_ids_are_generated_unique_and_rules_removable() -> None:
    engine = FaultEngine(ManualClock())
    a = engine.add_rule({"effect": {"status": 500}})
    b = engine.add_rule({"id": "fault-2", "effect": {"status": 500}})
    c = engine.add_rule({"effect": {"status": 500}})
    assert [a.id, b.id, c.id] == ["fault-1", "fault-2", "fault-3"]
    with pytest.raises(ValueError, match="'fault-2' already exists"):
        engine.add_rule({"id": "fault-2", "effect": {"status": 500}})
    assert engine.remove_rule("fault-1") is True
    assert engine.remove_rule("fault-1") is False
    assert [r.id for r in engine.rules()] == ["fault-2", "fault-3"]


def test_dataclass_rules_are_validated_like_json() -> None:
    engine = FaultEngine(ManualClock())
    rule = FaultRule(
        id="obj",
        match=FaultMatch(method="PUT", resource_type=None, id_pattern=f"{RG}/*", operation=None),
        effect=FaultEffect(stuck_for=30.0, code="OperationTimedOut"),
        schedule=FaultSchedule(first_n=1),
        description="hang the first PUT",
    )
    assert engine.add_rule(rule) == rule
    lower = engine.add_rule(
        FaultRule(id="lower", match=FaultMatch(method="delete"), effect=FaultEffect(status=500))
    )
    assert lower.match.method == "DELETE"
    assert hit(engine, VNET, method="DELETE", operation="delete") == "lower"
    with pytest.raises(ValueError, match="effect"):
        engine.add_rule(FaultRule(id="empty"))
    with pytest.raises(ValueError, match=r"schedule\.probability"):
        engine.add_rule(
            FaultRule(id="p", effect=FaultEffect(status=500), schedule=FaultSchedule(probability=2))
        )


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({}, "'effect' is required"),
        ({"effect": {}}, "at least one of status, latency, stuckFor or failOperation"),
        ({"effect": {"status": 200}}, "'effect.status' must be an HTTP error status"),
        ({"effect": {"status": "500"}}, "'effect.status' must be an integer"),
        ({"effect": {"latency": -1}}, "'effect.latency' must be from 0 to 3600, not -1"),
        ({"effect": {"latency": 1e308}}, "'effect.latency' must be from 0 to 3600"),
        ({"effect": {"latency": float("inf")}}, "'effect.latency' must be from 0 to 3600"),
        ({"effect": {"latency": float("nan")}}, "'effect.latency' must be from 0 to 3600"),
        ({"effect": {"status": 429, "retryAfter": 1e9}}, "'effect.retryAfter' must be from 0"),
        ({"effect": {"stuckFor": 1e308}}, "'effect.stuckFor' must be from 0 to 3.15576e+08"),
        (
            {"effect": {"status": 500}, "schedule": {"windowEnd": float("inf")}},
            "'schedule.windowEnd' must be from 0",
        ),
        (
            {"effect": {"stuckFor": 5}, "match": {"method": "GET"}},
            "this rule matches only reads, which start none",
        ),
        (
            {"effect": {"failOperation": True}, "match": {"operation": "read"}},
            "this rule matches only reads, which start none",
        ),
        ({"effect": {"latency": True}}, "'effect.latency' must be a number"),
        ({"effect": {"retryAfter": 5, "latency": 1}}, "needs 'effect.status'"),
        ({"effect": {"code": "X", "latency": 1}}, "describe an error"),
        ({"effect": {"status": 500, "failOperation": True}}, "cannot be combined"),
        ({"effect": {"failOperation": "yes"}}, "'effect.failOperation' must be true or false"),
        ({"effect": {"status": 500, "retry": 1}}, "'effect.retry' is not a known field"),
        ({"effect": {"stuckFor": 1, "stuck_for": 2}}, "given twice"),
        ({"effect": {"status": 500}, "match": {"method": "FETCH"}}, "'match.method' must be one"),
        ({"effect": {"status": 500}, "match": {"resourceType": "vnets"}}, "match.resourceType"),
        ({"effect": {"status": 500}, "match": {"idPattern": ""}}, "'match.idPattern' must be"),
        ({"effect": {"status": 500}, "match": []}, "'match' must be an object"),
        ({"effect": {"status": 500}, "schedule": {"probability": 1.5}}, "from 0 to 1"),
        ({"effect": {"status": 500}, "schedule": {"firstN": 0}}, "'schedule.firstN' must be"),
        ({"effect": {"status": 500}, "schedule": {"afterN": -1}}, "'schedule.afterN' must be"),
        (
            {"effect": {"status": 500}, "schedule": {"windowStart": 5, "windowEnd": 5}},
            "'schedule.windowEnd' must be later",
        ),
        ({"effect": {"status": 500}, "when": "now"}, "'when' is not a fault rule field"),
        ({"effect": {"status": 500}, "description": 3}, "'description' must be a string"),
    ],
)
def test_invalid_rules_name_the_field(rule: dict[str, Any], fragment: str) -> None:
    engine = FaultEngine(ManualClock())
    with pytest.raises(ValueError) as info:
        engine.add_rule(rule)
    assert fragment in str(info.value)
    assert engine.rules() == []


def test_applied_fault_renders_http_and_operation_errors() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule(
        {"id": "throttle", "match": {"method": "GET"}, "effect": {"status": 429, "retryAfter": 7}}
    )
    engine.add_rule(
        {
            "id": "hang",
            "match": {"idPattern": "*/subnets/*"},
            "effect": {"stuckFor": 60, "latency": 0.2},
        }
    )
    engine.add_rule(
        {
            "id": "boom",
            "match": {"method": "PUT"},
            "effect": {"failOperation": True, "code": "InternalOperationError", "message": "x"},
        }
    )
    throttled = engine.match(
        method="get", resource_id=VNET, resource_type=None, operation="read", path=VNET
    )
    assert throttled is not None
    error = throttled.http_error()
    assert error is not None
    assert (error.status, error.code) == (429, "TooManyRequests")
    assert error.headers == {"Retry-After": "7"}
    assert "'throttle'" in error.message
    assert throttled.operation_error() is None

    hung = engine.match(
        method="PUT", resource_id=SUBNET, resource_type=None, operation="write", path=SUBNET
    )
    assert hung is not None
    assert hung.http_error() is None
    timeout = hung.operation_error()
    assert timeout is not None
    assert timeout.code == "OperationTimedOut"
    assert hung.effect.stuck_for == 60.0

    failed = engine.match(
        method="PUT", resource_id=VNET, resource_type=None, operation="write", path=VNET
    )
    assert failed is not None
    detail = failed.operation_error()
    assert detail is not None
    assert (detail.code, detail.message) == ("InternalOperationError", "x")


def test_load_config_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "faults.yaml"
    yaml_file.write_text(
        "faults:\n"
        "  - id: slow-gets\n"
        "    match: {method: GET}\n"
        "    effect: {latency: 0.25}\n"
        "  - match:\n"
        "      resourceType: Microsoft.Compute/virtualMachines\n"
        "      operation: deallocate\n"
        "    effect: {stuckFor: 120}\n"
        "    schedule: {firstN: 1}\n"
        "    description: a deallocation that hangs\n",
        encoding="utf-8",
    )
    engine = FaultEngine(ManualClock())
    rules = engine.load_config(yaml_file)
    assert [r.id for r in rules] == ["slow-gets", "fault-1"]
    assert rules[1].match.resource_type == "Microsoft.Compute/virtualMachines"
    assert rules[1].description == "a deallocation that hangs"
    json_file = tmp_path / "faults.json"
    json_file.write_text(json.dumps({"faults": [{"effect": {"status": 503}}]}), encoding="utf-8")
    assert [r.id for r in engine.load_config(str(json_file))] == ["fault-2"]
    assert [r.id for r in engine.load_config({"faults": []})] == []
    assert len(engine.rules()) == 3


def test_load_config_is_all_or_nothing_and_names_the_problem(tmp_path: Path) -> None:
    engine = FaultEngine(ManualClock())
    config = {"faults": [{"effect": {"status": 500}}, {"effect": {"status": 500, "colour": 1}}]}
    with pytest.raises(ValueError, match=r"faults\[1\]: 'effect.colour' is not a known field"):
        engine.load_config(config)
    assert engine.rules() == []
    assert engine.add_rule({"effect": {"status": 500}}).id == "fault-1"
    with pytest.raises(ValueError, match="must be an object with a 'faults' list"):
        engine.load_config({"rules": []})
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ValueError, match=r"nope\.yaml' cannot be read"):
        engine.load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("faults: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid YAML or JSON"):
        engine.load_config(broken)


def test_to_json_shape_round_trips_through_add_rule() -> None:
    engine = FaultEngine(ManualClock(), seed=9)
    engine.add_rule(
        {
            "id": "r",
            "match": {"method": "PUT", "idPattern": "*/vnet1"},
            "effect": {"status": 409, "code": "AnotherOperationInProgress", "retryAfter": 1.5},
            "schedule": {"probability": 1, "afterN": 1},
            "description": "d",
        }
    )
    hit(engine)
    hit(engine)
    doc = engine.to_json()
    assert doc["seed"] == 9
    [rule] = doc["rules"]
    assert rule["matched"] == 2
    assert rule["fired"] == 1
    assert rule["effect"]["retryAfter"] == 1.5
    assert doc["applied"][0]["ruleId"] == "r"
    assert doc["applied"][0]["effect"]["code"] == "AnotherOperationInProgress"
    json.dumps(doc)  # the admin API serves it as it is
    again = FaultEngine(ManualClock())
    payload = {k: v for k, v in rule.items() if k not in ("matched", "fired")}
    payload["match"] = {k: v for k, v in payload["match"].items() if v is not None}
    payload["effect"] = {k: v for k, v in payload["effect"].items() if v is not None}
    payload["schedule"] = {k: v for k, v in payload["schedule"].items() if v is not None}
    assert again.add_rule(payload) == engine.rules()[0]


def test_concurrent_matching_is_consistent() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule({"id": "r", "effect": {"status": 500}, "schedule": {"firstN": 100}})
    fired: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        count = sum(1 for _ in range(100) if hit(engine) == "r")
        with lock:
            fired.append(count)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(fired) == 100
    assert len(engine.applied()) == 100


def _apply(engine: FaultEngine) -> AppliedFault:
    applied = engine.match(
        method="PUT", resource_id=VNET, resource_type=None, operation="write", path=VNET
    )
    assert applied is not None
    return applied


def test_a_retracted_operation_fault_gives_back_its_place() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule({"id": "hang", "effect": {"stuckFor": 60}, "schedule": {"firstN": 1}})
    engine.retract(_apply(engine))
    assert engine.applied() == []
    rule = engine.to_json()["rules"][0]
    assert (rule["matched"], rule["fired"]) == (0, 0)
    # The next request is the rule's first again.
    kept = _apply(engine)
    assert engine.applied() == [kept]
    assert hit(engine) is None


def test_a_retracted_fault_keeps_the_latency_it_added() -> None:
    engine = FaultEngine(ManualClock())
    engine.add_rule({"id": "slow-hang", "effect": {"stuckFor": 60, "latency": 0.5}})
    engine.retract(_apply(engine))
    [left] = engine.applied()
    assert left.effect == FaultEffect(latency=0.5)
    assert left.operation_error() is None
