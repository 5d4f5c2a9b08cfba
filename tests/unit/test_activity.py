from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from armguard.arm.errors import ArmError
from armguard.clock import ManualClock, isoformat
from armguard.emulator.activity import ActivityLog, parse_timestamp

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-000000000002"
VNET = (
    f"/subscriptions/{SUB}/resourceGroups/Prod-RG/providers/Microsoft.Network/virtualNetworks/vnet1"
)
START = 1_767_225_600.0  # ManualClock's default start, 2026-01-01T00:00:00Z
SINCE = "eventTimestamp ge '2026-01-01T00:00:00Z'"


def record(log: ActivityLog, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "subscription": SUB,
        "caller": "alice@contoso.com",
        "operation_name": "Microsoft.Network/virtualNetworks/write",
        "resource_id": VNET,
        "status": "Started",
        "http_status": None,
        "correlation_id": "corr-1",
        "operation_id": "op-1",
        "method": "PUT",
        "uri": f"http://127.0.0.1:8443{VNET}?api-version=2024-05-01",
    }
    args.update(overrides)
    return log.record(**args)


def bad_request(log: ActivityLog, filter_text: str | None, select: str | None = None) -> str:
    with pytest.raises(ArmError) as info:
        log.query(SUB, filter_text, select)
    assert info.value.status == 400
    assert info.value.code == "BadRequest"
    return info.value.message


def test_failed_event_has_arm_shape() -> None:
    clock = ManualClock()
    clock.advance(1.25)
    log = ActivityLog(clock, seed=7)
    error = {"error": {"code": "AnotherOperationInProgress", "message": "busy", "details": []}}
    event = record(
        log,
        status="Failed",
        http_status=409,
        error=error,
        client_request_id="req-9",
        claims={"tid": "tenant-x", "appid": "app"},
        method="put",
    )
    assert set(event) == {
        "authorization",
        "caller",
        "channels",
        "claims",
        "correlationId",
        "description",
        "eventDataId",
        "eventName",
        "category",
        "eventTimestamp",
        "httpRequest",
        "id",
        "level",
        "operationId",
        "operationName",
        "properties",
        "resourceGroupName",
        "resourceProviderName",
        "resourceType",
        "resourceId",
        "status",
        "subStatus",
        "submissionTimestamp",
        "subscriptionId",
        "tenantId",
        "relatedEvents",
    }
    assert event["authorization"] == {
        "action": "Microsoft.Network/virtualNetworks/write",
        "scope": VNET,
    }
    assert event["channels"] == "Operation"
    assert event["category"] == {"value": "Administrative", "localizedValue": "Administrative"}
    assert event["eventName"] == {"value": "EndRequest", "localizedValue": "End request"}
    assert event["eventTimestamp"] == "2026-01-01T00:00:01.2500000Z"
    assert event["eventTimestamp"] == isoformat(START + 1.25)
    assert event["httpRequest"] == {
        "clientRequestId": "req-9",
        "clientIpAddress": "127.0.0.1",
        "method": "PUT",
        "uri": f"http://127.0.0.1:8443{VNET}?api-version=2024-05-01",
    }
    ticks = 621_355_968_000_000_000 + int((START + 1.25) * 10_000_000)
    assert event["id"] == f"{VNET}/events/{event['eventDataId']}/ticks/{ticks}"
    assert event["level"] == "Error"
    assert event["operationName"] == {
        "value": "Microsoft.Network/virtualNetworks/write",
        "localizedValue": "Create or Update Virtual Network",
    }
    assert event["resourceGroupName"] == "Prod-RG"
    assert event["resourceProviderName"]["value"] == "Microsoft.Network"
    assert event["resourceType"]["value"] == "Microsoft.Network/virtualNetworks"
    assert event["status"] == {"value": "Failed", "localizedValue": "Failed"}
    assert event["subStatus"] == {
        "value": "Conflict",
        "localizedValue": "Conflict (HTTP Status Code: 409)",
    }
    assert event["tenantId"] == "tenant-x"
    props = event["properties"]
    assert all(isinstance(v, str) for v in props.values())
    assert props["statusCode"] == "Conflict"
    assert json.loads(props["statusMessage"]) == error
    assert props["responseBody"] == props["statusMessage"]
    assert event["relatedEvents"] == []
    assert uuid.UUID(event["eventDataId"]).version == 4
    assert str(uuid.UUID(event["eventDataId"])) == event["eventDataId"]


def test_start_and_async_completion_events() -> None:
    log = ActivityLog(ManualClock())
    begin = record(log)
    assert begin["eventName"]["value"] == "BeginRequest"
    assert begin["level"] == "Informational"
    assert begin["subStatus"] == {"value": "", "localizedValue": ""}
    assert "statusCode" not in begin["properties"]
    failure = {"status": "Failed", "error": {"code": "ResourceOperationFailure", "message": "x"}}
    done = record(log, status="failed", error=failure)
    assert done["status"]["value"] == "Failed"
    assert done["subStatus"] == {"value": "", "localizedValue": ""}
    assert json.loads(done["properties"]["statusMessage"]) == failure
    action = record(log, operation_name="Microsoft.Compute/virtualMachines/deallocate/action")
    assert action["operationName"]["localizedValue"] == "Deallocate Virtual Machine"
    created = record(log, status="Succeeded", http_status=201)
    assert created["subStatus"]["localizedValue"] == "Created (HTTP Status Code: 201)"
    assert begin["eventDataId"] != done["eventDataId"]


def test_bad_record_arguments_are_rejected() -> None:
    log = ActivityLog(ManualClock())
    with pytest.raises(ValueError, match="status 'Done' is not an Activity Log status"):
        record(log, status="Done")
    with pytest.raises(ValueError, match="http_status 42"):
        record(log, http_status=42)
    with pytest.raises(ValueError, match="max_events"):
        ActivityLog(ManualClock(), max_events=0)


def test_query_time_window_order_and_subscription() -> None:
    clock = ManualClock()
    log = ActivityLog(clock)
    for n in range(5):
        record(log, operation_id=f"op-{n}")
        clock.advance(60)
    record(log, subscription=OTHER_SUB, operation_id="other")
    found = log.query(SUB, SINCE)
    assert [e["operationId"] for e in found] == ["op-4", "op-3", "op-2", "op-1", "op-0"]
    window = (
        "eventTimestamp ge '2026-01-01T00:01:00.0000000Z' and "
        "EVENTTIMESTAMP LE '2026-01-01T00:03:00Z'"
    )
    assert [e["operationId"] for e in log.query(SUB, window)] == ["op-3", "op-2", "op-1"]
    assert log.query(SUB, "eventTimestamp ge '2026-01-02'") == []
    assert [e["operationId"] for e in log.query(OTHER_SUB.upper(), SINCE)] == ["other"]
    # Events at the same instant come back newest-recorded first.
    record(log, operation_id="same-a")
    record(log, operation_id="same-b")
    assert [e["operationId"] for e in log.query(SUB, SINCE)][:2] == ["same-b", "same-a"]


def test_query_equality_clauses_are_case_insensitive() -> None:
    log = ActivityLog(ManualClock())
    record(log, correlation_id="C-1", caller="alice@contoso.com", status="Succeeded")
    nsg = VNET.replace("virtualNetworks/vnet1", "networkSecurityGroups/nsg1").replace(
        "Prod-RG", "Other-RG"
    )
    record(log, resource_id=nsg, correlation_id="C-2", caller="bob@contoso.com", status="Failed")
    storage = f"/subscriptions/{SUB}/resourceGroups/prod-rg/providers/Microsoft.Storage/storageAccounts/st1"
    record(log, resource_id=storage, correlation_id="C-3", status="Accepted")

    def ids(clause: str) -> list[str]:
        return [e["correlationId"] for e in log.query(SUB, f"{SINCE} and {clause}")]

    assert ids("resourceGroupName eq 'PROD-RG'") == ["C-3", "C-1"]
    assert ids(f"resourceUri eq '{VNET.lower()}'") == ["C-1"]
    assert ids(f"resourceId eq '{nsg}'") == ["C-2"]
    assert ids("resourceProvider eq 'microsoft.storage'") == ["C-3"]
    assert ids("correlationId eq 'c-2'") == ["C-2"]
    assert ids("caller eq 'BOB@contoso.com'") == ["C-2"]
    assert ids("status eq 'failed'") == ["C-2"]
    assert ids("resourceGroupName eq 'prod-rg' AND status eq 'Accepted'") == ["C-3"]
    assert ids("caller eq 'o''brien'") == []


@pytest.mark.parametrize(
    ("filter_text", "fragment"),
    [
        (None, "$filter query parameter is required"),
        ("  ", "$filter query parameter is required"),
        ("resourceGroupName eq 'rg'", "must include a start time"),
        ("eventTimestamp le '2026-01-01'", "must include a start time"),
        ("eventTimestamp ge 'yesterday'", "'yesterday' for eventTimestamp is not an ISO 8601"),
        ("eventTimestamp eq '2026-01-01'", "with 'ge' and 'le' only"),
        (f"{SINCE} and level eq 'Error'", "field 'level' is not supported"),
        (f"{SINCE} and caller ge 'a'", "compares caller with 'eq' only"),
        (f"{SINCE} or caller eq 'a'", "expected 'and' or the end"),
        (f"{SINCE} and caller eq", "needs a quoted value"),
        (f"{SINCE} and caller 'x'", "needs an operator"),
        (f"{SINCE} and", "expected a field name"),
        ("eventTimestamp ge '2026-01-01", "unterminated quoted value"),
        (f'{SINCE} and caller eq "x"', "unexpected character '\"'"),
        (f"{SINCE} and {SINCE}", "more than one 'eventTimestamp ge'"),
        (f"{SINCE} and caller eq 'a' and caller eq 'b'", "more than one 'caller'"),
        ("eventTimestamp ge '2026-01-02' and eventTimestamp le '2026-01-01'", "earlier than"),
    ],
)
def test_malformed_filters_are_400_naming_the_problem(
    filter_text: str | None, fragment: str
) -> None:
    assert fragment in bad_request(ActivityLog(ManualClock()), filter_text)


def test_select_projects_fields() -> None:
    log = ActivityLog(ManualClock())
    record(log)
    [event] = log.query(SUB, SINCE, "operationName, CORRELATIONID,,status")
    assert event == {
        "operationName": {
            "value": "Microsoft.Network/virtualNetworks/write",
            "localizedValue": "Create or Update Virtual Network",
        },
        "correlationId": "corr-1",
        "status": {"value": "Started", "localizedValue": "Started"},
    }
    assert "'bogus' is not an event field" in bad_request(log, SINCE, "status,bogus")


def test_queries_return_copies() -> None:
    log = ActivityLog(ManualClock())
    record(log)
    log.query(SUB, SINCE)[0]["status"]["value"] = "Tampered"
    log.dump()[0]["caller"] = "mallory"
    [event] = log.query(SUB, SINCE)
    assert event["status"]["value"] == "Started"
    assert event["caller"] == "alice@contoso.com"


def test_bounded_memory_drops_oldest() -> None:
    clock = ManualClock()
    log = ActivityLog(clock, max_events=3)
    for n in range(5):
        record(log, operation_id=f"op-{n}")
        clock.advance(1)
    assert len(log) == 3
    assert [e["operationId"] for e in log.dump()] == ["op-2", "op-3", "op-4"]


def test_dump_load_round_trip_and_clear() -> None:
    clock = ManualClock()
    log = ActivityLog(clock)
    record(log, operation_id="a")
    clock.advance(5)
    record(log, operation_id="b")
    dumped = log.dump()
    restored = ActivityLog(ManualClock(), max_events=10)
    restored.load(list(reversed(dumped)))
    assert restored.dump() == dumped
    assert [e["operationId"] for e in restored.query(SUB, SINCE)] == ["b", "a"]
    window = "eventTimestamp ge '2026-01-01T00:00:04Z'"
    assert [e["operationId"] for e in restored.query(SUB, window)] == ["b"]
    with pytest.raises(ValueError, match="event 1 needs string 'eventTimestamp'"):
        restored.load([dumped[0], {"subscriptionId": SUB}])
    with pytest.raises(ValueError, match="unreadable eventTimestamp 'soon'"):
        restored.load([{"eventTimestamp": "soon", "subscriptionId": SUB}])
    restored.clear()
    assert restored.dump() == []


def test_seeded_event_ids_are_reproducible() -> None:
    first = record(ActivityLog(ManualClock(), seed=3))
    second = record(ActivityLog(ManualClock(), seed=3))
    assert first["eventDataId"] == second["eventDataId"]
    assert first["id"] == second["id"]


def test_concurrent_records_are_all_kept() -> None:
    log = ActivityLog(ManualClock())

    def writer(n: int) -> None:
        for k in range(200):
            record(log, operation_id=f"{n}-{k}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = log.query(SUB, SINCE)
    assert len(events) == 800
    assert len({e["eventDataId"] for e in events}) == 800


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-01-01") == START
    assert parse_timestamp("2026-01-01T00:00:00.1234567Z") == pytest.approx(START + 0.123456)
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == START
    with pytest.raises(ValueError):
        parse_timestamp("01/02/2026")


def test_a_bad_dump_leaves_the_log_as_it_was() -> None:
    log = ActivityLog(ManualClock())
    record(log, operation_id="kept")
    before = log.dump()
    with pytest.raises(ValueError, match="event 1 is not an object"):
        log.load([before[0], "x"])
    with pytest.raises(ValueError, match="must be a list"):
        log.prepare_load({"events": []})
    assert log.dump() == before


def test_queries_read_loaded_events_that_lack_fields() -> None:
    log = ActivityLog(ManualClock())
    log.load([{"eventTimestamp": "2026-01-01T00:00:01Z", "subscriptionId": SUB, "status": "x"}])
    for clause in ("caller", "status", "resourceProvider", "resourceGroupName", "correlationId"):
        assert log.query(SUB, f"{SINCE} and {clause} eq 'x'") == []
    assert len(log.query(SUB, SINCE, "caller,status")) == 1


class _WallClock(ManualClock):
    """A wall clock, which (unlike the monotonic one) an NTP step can set back."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0.0

    def now(self) -> float:
        return super().now() + self.step


def test_group_queries_and_pages_follow_eviction_and_a_clock_set_back() -> None:
    clock = _WallClock()
    log = ActivityLog(clock, max_events=4)
    other = VNET.replace("Prod-RG", "Other-RG")
    for n in range(6):
        record(log, operation_id=f"op-{n}", resource_id=VNET if n % 2 else other)
        clock.advance(10)
    clock.step = -25  # a clock set back: the event sorts by its time, not its arrival
    record(log, operation_id="late", resource_id=VNET)

    def ids(clause: str) -> list[str]:
        return [e["operationId"] for e in log.query(SUB, f"{SINCE}{clause}")]

    assert ids("") == ["op-5", "op-4", "late", "op-3"]
    assert ids(" and resourceGroupName eq 'prod-rg'") == ["op-5", "late", "op-3"]
    assert ids(f" and resourceUri eq '{other}'") == ["op-4"]
    first, following = log.page(SUB, SINCE, size=3)
    assert [e["operationId"] for e in first] == ["op-5", "op-4", "late"]
    rest, end = log.page(SUB, SINCE, size=3, after=following)
    assert [e["operationId"] for e in rest] == ["op-3"]
    assert end is None
    # A page exactly as long as what is left says it is the last.
    assert log.page(SUB, SINCE, size=4)[1] is None


def test_dropped_events_are_not_kept_alive_by_the_group_index() -> None:
    clock = ManualClock()
    log = ActivityLog(clock, max_events=10)
    groups = [VNET.replace("Prod-RG", f"rg-{n}") for n in range(5)]
    for n in range(5_000):
        record(log, resource_id=groups[n % 5], operation_id=f"op-{n}")
        clock.advance(1)
    index = [log._events, *log._groups.values()]
    assert len(log._groups) == 5
    # Each series holds its live events and at most as many dropped ones.
    assert sum(len(series.items) for series in index) <= 2 * 2 * 10
