"""What one Activity Log event may keep of a caller's values, and what the byte budget
charges for it."""

from __future__ import annotations

import json
import tracemalloc

from armguard.clock import ManualClock
from armguard.emulator.activity import ActivityLog
from armguard.emulator.event_bounds import (
    EVENT_OVERHEAD,
    MAX_CHARS,
    MAX_ERROR_CHARS,
    clip,
    clip_error,
)

SUB = "00000000-0000-0000-0000-000000000001"
RID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
SINCE = "eventTimestamp ge '2020-01-01T00:00:00Z'"


def append(log: ActivityLog, n: int, **extra: object) -> None:
    args: dict[str, object] = {
        "subscription": SUB,
        "caller": "alice@example.com",
        "operation_name": "Microsoft.Network/virtualNetworks/write",
        "resource_id": RID,
        "status": "Started",
        "http_status": None,
        "correlation_id": f"c{n}",
        "operation_id": f"o{n}",
        "method": "PUT",
        "uri": f"http://127.0.0.1{RID}?api-version=2024-05-01",
    }
    args.update(extra)
    log.append(**args)


def test_clip_keeps_short_values_and_says_how_much_it_cut() -> None:
    assert clip("x" * MAX_CHARS) == "x" * MAX_CHARS
    assert clip("x" * (MAX_CHARS + 5)) == "x" * MAX_CHARS + "...[5 more characters]"


def test_an_error_body_stays_json_with_its_strings_clipped() -> None:
    error = {
        "error": {
            "code": "InvalidParameter",
            "message": "bad value '" + "v" * 100_000 + "'",
            "details": [{"code": "D", "message": "m"}] * 80,
        }
    }
    parsed = json.loads(clip_error(error))
    assert parsed["error"]["code"] == "InvalidParameter"
    assert parsed["error"]["message"].endswith("...[97964 more characters]")
    assert len(parsed["error"]["details"]) == 51
    assert parsed["error"]["details"][-1] == "...[30 more items]"


def test_an_error_body_too_large_once_clipped_keeps_its_code_and_message() -> None:
    details = [{"code": f"D{n}", "message": "m" * 3_000} for n in range(40)]
    error = {"status": "Failed", "error": {"code": "Big", "message": "many", "details": details}}
    text = clip_error(error)
    assert len(text) <= MAX_ERROR_CHARS
    parsed = json.loads(text)
    assert parsed["status"] == "Failed"
    assert (parsed["error"]["code"], parsed["error"]["message"]) == ("Big", "many")
    assert "characters of error body not kept" in parsed["error"]["details"][0]


def test_a_deeply_nested_error_is_cut_at_a_depth() -> None:
    nested: object = "leaf"
    for _ in range(30):
        nested = {"inner": nested}
    parsed = json.loads(clip_error({"error": {"code": "Deep", "details": [nested]}}))
    assert "...[nested too deep]" in json.dumps(parsed)


def test_the_byte_budget_drops_the_oldest_and_keeps_the_newest() -> None:
    one = ActivityLog(ManualClock(), max_events=1_000)
    append(one, 10)
    cost = one.bytes
    assert EVENT_OVERHEAD < cost < EVENT_OVERHEAD + 1_000
    log = ActivityLog(ManualClock(), max_events=1_000, max_bytes=cost * 5)
    for n in range(12):
        append(log, n)
    assert len(log) == 5
    assert log.bytes <= cost * 5
    assert [e["correlationId"] for e in log.query(SUB, SINCE)] == [
        f"c{n}" for n in range(11, 6, -1)
    ]


def test_an_event_larger_than_the_budget_is_still_kept_alone() -> None:
    log = ActivityLog(ManualClock(), max_bytes=100)
    append(log, 0)
    append(log, 1)
    assert [e["correlationId"] for e in log.query(SUB, SINCE)] == ["c1"]


def test_huge_claims_and_headers_are_clipped_and_charged_as_clipped() -> None:
    log = ActivityLog(ManualClock())
    append(
        log,
        0,
        claims={"upn": "u" * 50_000, "groups": ["g" * 100] * 1_000},
        correlation_id="c" * 50_000,
    )
    event = log.query(SUB, SINCE)[0]
    assert len(event["claims"]["upn"]) < MAX_CHARS + 30
    assert len(event["claims"]["groups"]) < MAX_CHARS + 30
    assert len(event["correlationId"]) < MAX_CHARS + 30
    assert log.bytes < EVENT_OVERHEAD + 5 * MAX_CHARS


def test_the_byte_budget_charges_at_least_what_the_events_hold_and_not_far_more() -> None:
    """The budget is what bounds the emulator's memory: an estimate below the truth would let
    the log grow past ``--activity-memory``, one far above it would keep too few events."""
    log = ActivityLog(ManualClock(), max_events=10_000, max_bytes=1 << 40)
    append(log, -1)  # the log's lists and the interned group exist before the count starts
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        charged = log.bytes
        for n in range(2_000):
            append(log, n, client_request_id=f"request-{n:08d}", error={"error": {"code": "E"}})
        held = tracemalloc.get_traced_memory()[0] - before
        charged = log.bytes - charged
    finally:
        tracemalloc.stop()
    assert 0.7 < held / charged <= 1.0, (held, charged)
