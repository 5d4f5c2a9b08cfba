"""Timeline analysis over real log files: shapes, findings, filters, bad input, bounded memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from armguard.arm.ids import ResourceId
from armguard.clock import ManualClock
from armguard.diagnose.sources import SourceError, parse_time, read_records
from armguard.diagnose.timeline import (
    Operation,
    Timeline,
    TimelineOptions,
    load_timeline,
    parse_time_bound,
)
from armguard.events import JobEvent

DATA = Path(__file__).parent / "data"
INCIDENT = DATA / "incident.json"
JOBS = DATA / "jobs.jsonl"
RG = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/prod-rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-prod"
SUBNET = f"{VNET}/subnets/subnet-app"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-app"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/api-01"
DISK = f"{RG}/providers/Microsoft.Compute/disks/old-disk"


def _events() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(INCIDENT.read_text())
    return data


def _ops(t: Timeline, caller: str, resource: str) -> list[Operation]:
    return [o for o in t.operations if o.caller == caller and o.resource_id == resource]


def _shape(t: Timeline) -> list[tuple[str, str, str, float, float | None, str, str | None]]:
    return [
        (o.resource_id, o.caller, o.operation, o.start, o.end, o.outcome, o.kind)
        for o in t.operations
    ]


def test_every_export_shape_gives_the_same_operations(tmp_path: Path) -> None:
    events = _events()
    pages = tmp_path / "pages.json"
    pages.write_text(
        json.dumps({"value": events[:20], "nextLink": "https://management.azure.com/next"})
        + "\n"
        + json.dumps({"nextLink": None, "value": events[20:]})
    )
    lines = tmp_path / "lines.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in reversed(events)) + "\n\n")
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(events, separators=(",", ":")))
    baseline = _shape(load_timeline([str(INCIDENT)]))
    assert len(baseline) == 17
    for path in (pages, lines, compact):
        assert _shape(load_timeline([str(path)])) == baseline, path.name


def test_diagnostic_settings_export_records_are_read(tmp_path: Path) -> None:
    base = {
        "resourceId": NSG,
        "operationName": "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
        "category": "Administrative",
        "correlationId": "c1",
        "identity": {"claims": {"appid": "exporter-app"}},
    }
    path = tmp_path / "export.jsonl"
    path.write_text(
        json.dumps({**base, "time": "2026-04-27T10:00:00.0000000Z", "resultType": "Start"})
        + "\n"
        + json.dumps(
            {
                **base,
                "time": "2026-04-27T10:00:02.0000000Z",
                "resultType": "Failure",
                "resultSignature": "Conflict.409",
                "properties": {
                    "statusCode": "Conflict",
                    "statusMessage": json.dumps(
                        {"error": {"code": "AnotherOperationInProgress", "message": "busy"}}
                    ),
                },
            }
        )
        + "\n"
    )
    (op,) = load_timeline([str(path)]).operations
    assert (op.caller, op.http_status, op.kind, op.end) == (
        "exporter-app",
        409,
        "operation_in_progress",
        parse_time("2026-04-27T10:00:02Z"),
    )


def test_a_subnet_409_is_linked_to_the_vnet_write_in_flight() -> None:
    t = load_timeline([str(INCIDENT)])
    (vnet_write,) = _ops(t, "pipeline@contoso.com", VNET)
    subnet_conflicts = [c for c in t.conflicts if c.operation.resource_id == SUBNET]
    assert len(subnet_conflicts) == 7
    for conflict in subnet_conflicts:
        assert conflict.operation.kind == "operation_in_progress"
        assert conflict.operation.http_status == 409
        assert conflict.cause is vnet_write
        assert conflict.relation == "in_flight"
    first = subnet_conflicts[0].to_json()
    assert first["cause"]["caller"] == "pipeline@contoso.com"
    assert "operations/3f9b2c1a" in (subnet_conflicts[0].operation.operation_url or "")
    overlap = next(o for o in t.overlaps if set(o.callers) == {"ops-bot", "pipeline@contoso.com"})
    assert overlap.relation == "parent/child"
    assert overlap.resource_id == VNET
    assert vnet_write.id in overlap.operations
    assert len(overlap.operations) == 8


def test_a_412_is_linked_to_the_write_that_moved_the_etag_and_the_replay_is_found() -> None:
    t = load_timeline([str(INCIDENT)])
    (winner,) = _ops(t, "terraform@contoso.com", NSG)
    first, second = _ops(t, "tag-normalizer", NSG)
    conflicts = {c.operation.id: c for c in t.conflicts}
    assert conflicts[first.id].cause is winner
    assert conflicts[first.id].relation == "completed_before"
    assert first.etag_sent == 'W/"1f7c0b2e-0000-4000-8000-000000000001"'
    assert first.etag_live == 'W/"1f7c0b2e-0000-4000-8000-000000000002"'
    replays = [r for r in t.stale_replays if r.operation.resource_id == NSG]
    assert [(r.operation, r.rejected, r.etag) for r in replays] == [
        (second, first, first.etag_sent)
    ]
    # tag-normalizer did not overlap terraform: their writes were minutes apart.
    assert not [o for o in t.overlaps if "tag-normalizer" in o.callers]


def test_a_vm_conflict_names_the_deallocate_in_flight_and_a_scope_lock_names_the_lock() -> None:
    t = load_timeline([str(INCIDENT)])
    conflicts = {c.operation.resource_id: c for c in t.conflicts}
    vm = conflicts[VM]
    assert vm.cause is not None
    assert (vm.cause.caller, vm.cause.verb, vm.relation) == (
        "bob@contoso.com",
        "action",
        "in_flight",
    )
    assert "bob@contoso.com" in vm.explanation
    disk = conflicts[DISK]
    assert disk.operation.kind == "locked"
    assert disk.cause is not None
    assert disk.cause.operation == "Microsoft.Authorization/locks/write"
    assert disk.relation == "lock"


def test_retry_storms_follow_the_configured_threshold_and_window() -> None:
    (storm,) = load_timeline([str(INCIDENT)]).storms
    assert (storm.caller, storm.resource_id, storm.retries) == ("ops-bot", SUBNET, 7)
    assert storm.kinds == {"operation_in_progress": 7}
    assert storm.rate_per_minute == 3.5
    assert not load_timeline([str(INCIDENT)], TimelineOptions(storm_retries=8)).storms
    # Ten seconds apart: a five-second window never holds five retries.
    assert not load_timeline([str(INCIDENT)], TimelineOptions(storm_window=5)).storms


def test_tokenless_writers_say_how_it_was_determined() -> None:
    t = load_timeline([str(INCIDENT), str(JOBS)])
    found = {(w.caller, w.evidence) for w in t.tokenless}
    # writer-b's PUT sent no If-Match, but it is armguard's own write: armguard chose its
    # headers, so it is never a tokenless finding.
    assert not {c for c, _ in found} & {"writer-a", "writer-b"}
    assert ("pipeline@contoso.com", "request_body") in found
    assert ("<script>alert(1)</script>", "request_body") in found
    # tag-normalizer and terraform sent an etag; writer-a always did.
    assert not {c for c, _ in found} & {"tag-normalizer", "terraform@contoso.com", "writer-a"}
    # alice's VM write has no logged body: unknowable, and said so.
    summary = {row["resource_id"]: row for row in t.summary()}
    assert summary[VM]["tokens_unknown"] == 1
    assert any("cannot be told" in n for n in t.notes())
    assert any("never request headers" in n for n in t.notes())


def test_job_events_give_conflicts_replays_and_overlaps() -> None:
    t = load_timeline([str(JOBS)])
    writes = [o for o in t.operations if o.caller == "writer-a"]
    assert [(o.attempt, o.outcome, o.etag_sent) for o in writes] == [
        (0, "conflict", 'W/"etag-1"'),
        (1, "conflict", 'W/"etag-1"'),
        (2, "succeeded", 'W/"etag-2"'),
    ]
    (replay,) = t.stale_replays
    assert (replay.operation, replay.rejected) == (writes[1], writes[0])
    (vnet,) = [o for o in t.operations if o.caller == "writer-b"]
    assert vnet.operation == "Microsoft.Network/virtualNetworks/write"
    assert vnet.operation_url is not None
    assert vnet.operation_url.endswith("2024-05-01")
    assert {c.cause.id for c in t.conflicts if c.cause} == {vnet.id}
    # Both are armguard jobs: the coordinator orders its own writes, so their meeting is the
    # 412 above (absorbed: job-a rebased and applied), not an overlap of writers.
    assert not t.overlaps
    assert {c.handled for c in t.conflicts} == {"absorbed"}


def test_a_job_write_that_arm_also_logged_is_one_operation(tmp_path: Path) -> None:
    nsg_events = [
        e for e in _events() if e["resourceId"] == NSG and e["caller"] == "tag-normalizer"
    ]
    jobs = tmp_path / "jobs.jsonl"
    first_start = min(
        parse_time(e["eventTimestamp"]) for e in nsg_events if e["status"]["value"] == "Started"
    )
    from armguard.clock import isoformat

    jobs.write_text(
        JobEvent(
            isoformat(first_start + 0.05),
            "j1",
            NSG,
            "tag-normalizer",
            "write",
            verb="PUT",
            etag_sent='W/"from-job"',
        ).to_json()
        + "\n"
    )
    log = tmp_path / "al.json"
    log.write_text(json.dumps(nsg_events))
    t = load_timeline([str(log), str(jobs)])
    assert len(t.operations) == 2
    merged = t.operations[0]
    assert (merged.source, merged.etag_sent, merged.job_id) == ("both", 'W/"from-job"', "j1")
    assert merged.kind == "stale_version"


def test_resource_and_time_filters() -> None:
    subnet_only = load_timeline([str(INCIDENT)], TimelineOptions(resource=ResourceId.parse(SUBNET)))
    # The subnet's parent VNet stays (it caused the conflicts); unrelated resources go.
    assert {o.resource_id for o in subnet_only.operations} == {SUBNET, VNET}
    group = load_timeline([str(INCIDENT)], TimelineOptions(resource=ResourceId.parse(RG)))
    assert len(group.operations) == 17
    window = load_timeline(
        [str(INCIDENT)],
        TimelineOptions(
            since=parse_time("2026-04-27T10:15:00Z"), until=parse_time("2026-04-27T10:30:00Z")
        ),
    )
    assert {o.resource_id for o in window.operations} == {NSG}
    # Cut just after terraform's write: the 412s stay linked to it though it is outside.
    late = load_timeline(
        [str(INCIDENT)],
        TimelineOptions(
            since=parse_time("2026-04-27T10:16:00Z"), until=parse_time("2026-04-27T10:18:00Z")
        ),
    )
    assert {c.cause.caller for c in late.conflicts if c.cause} == {"terraform@contoso.com"}
    assert len(late.conflicts) == 2
    assert [o.caller for o in late.operations] == [
        "terraform@contoso.com",
        "tag-normalizer",
        "tag-normalizer",
    ]
    assert len(late.stale_replays) == 1


def test_relative_time_bounds_use_the_clock() -> None:
    clock = ManualClock(start=parse_time("2026-04-27T12:00:00Z"))
    assert parse_time_bound("2h", clock) == parse_time("2026-04-27T10:00:00Z")
    assert parse_time_bound("30m", clock) == parse_time("2026-04-27T11:30:00Z")
    assert parse_time_bound("2026-04-27T10:16:42.1234567Z", clock) == pytest.approx(
        parse_time("2026-04-27T10:16:42Z") + 0.1234567
    )
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time_bound("yesterday", clock)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"[]", "contains no events"),
        (b'{"value": [], "nextLink": null}', "contains no events"),
        (b"just some words\n", "not an Activity Log export or job-event log"),
        (b'[{"eventTimestamp": "2026-04-27T10:00:00Z", "resourceId": "/x"', "truncated"),
        (
            b'[{"eventTimestamp": "2026-04-27T10:00:00Z", "resourceId": "/x"} {"a": 1}]',
            "expected ',' or ']'",
        ),
        (b'[{"eventTimestamp": 2026-04-27}]', "invalid JSON"),
        (b'[{"name": "x", "value": 1}]', "neither an Activity Log event nor"),
        (b"[1, 2]", "is a JSON int"),
        (b'{"eventTimestamp": "last tuesday", "resourceId": "/x"}', "not a valid event"),
        (b'{"job_id": "j", "resource_id": "/x", "event": "write"}', "lacks ts, writer"),
        (b"\xff\xfe[{}]", "not UTF-8"),
    ],
)
def test_bad_input_names_the_file_and_the_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        load_timeline([str(path)])
    assert str(info.value).startswith(str(path) + ":")
    assert problem in str(info.value)


def test_a_syntax_error_reports_its_line(tmp_path: Path) -> None:
    good = json.dumps(_events()[0])
    path = tmp_path / "lines.jsonl"
    path.write_text(f"{good}\n{good}\n{good[:-1]},}}\n")
    with pytest.raises(SourceError, match=r"invalid JSON.* at line 3 column"):
        list(read_records(path))


def test_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        load_timeline([str(tmp_path / "absent.json")])
    with pytest.raises(SourceError, match="is a directory"):
        load_timeline([str(tmp_path)])


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from armguard.diagnose.timeline import load_timeline
    from armguard.diagnose.sources import read_records
    path, mode = sys.argv[1], sys.argv[2]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = {}
    if mode == "read":
        count = sum(1 for _ in read_records(path))
    else:
        t = load_timeline([path])
        count = len(t.operations)
        found = {
            "running": sum(1 for o in t.operations if o.end is None),
            "overlaps": len(t.overlaps),
            "overlapping_operations": sum(len(o.operations) for o in t.overlaps),
            "conflicts": len(t.conflicts),
            "caused": sum(1 for c in t.conflicts if c.cause is not None),
            "storms": len(t.storms),
        }
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"count": count, "growth_kib": after - before, **found}))
    """
)

_CONFLICT_BODY = json.dumps(
    {
        "error": {
            "code": "AnotherOperationInProgress",
            "message": "Another operation on this or dependent resource is in progress.",
        }
    }
)


def _write_big_log(path: Path, target_bytes: int) -> dict[str, int]:
    """A JSON array of Activity Log events with realistic template-sized request bodies, in
    the shapes that cost a pairwise analysis the most: every VNet is written by several
    callers at once, a bot's subnet writes are refused over and over (a retry storm on one
    subnet), and one operation in ten never ends (still running when the export was cut),
    so those pile up in flight together until the end of the log."""
    body = json.dumps({"properties": {"template": {"resources": ["x" * 64] * 40}}})
    base = parse_time("2026-04-27T10:00:00Z")
    counts = {"events": 0, "operations": 0, "running": 0, "refused": 0}
    from armguard.clock import isoformat

    with path.open("w") as out:
        out.write("[\n")
        op = 0
        while out.tell() < target_bytes:
            start = base + op * 0.5
            kind = op % 10
            resource = f"{RG}/providers/Microsoft.Network/virtualNetworks/v{op % 5}"
            caller = f"writer-{op % 7}"
            if kind == 8:
                resource, caller = (
                    f"{RG}/providers/Microsoft.Network/virtualNetworks/v0/subnets/s",
                    "bot",
                )
            event = {
                "resourceId": resource,
                "operationName": {"value": "Microsoft.Network/virtualNetworks/write"},
                "caller": caller,
                "operationId": f"op-{op}",
                "correlationId": f"c-{op}",
                "properties": {"requestbody": body, "statusCode": "Created"},
            }
            events = [{**event, "eventTimestamp": isoformat(start), "status": {"value": "Started"}}]
            if kind == 8:
                events.append(
                    {
                        **event,
                        "eventTimestamp": isoformat(start + 0.4),
                        "status": {"value": "Failed"},
                        "subStatus": {"value": "Conflict"},
                        "properties": {"statusCode": "Conflict", "statusMessage": _CONFLICT_BODY},
                    }
                )
                counts["refused"] += 1
            elif kind != 9:
                events.append(
                    {
                        **event,
                        "eventTimestamp": isoformat(start + 20),
                        "status": {"value": "Succeeded"},
                        "subStatus": {"value": "OK"},
                        "properties": {"statusCode": "OK"},
                    }
                )
            else:
                counts["running"] += 1
            for e in events:
                out.write(("," if counts["events"] else "") + json.dumps(e) + "\n")
                counts["events"] += 1
            counts["operations"] += 1
            op += 1
        out.write("]\n")
    return counts


def test_a_large_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    counts = _write_big_log(path, 50 * 1024 * 1024)
    size_kib = path.stat().st_size // 1024
    results = {}
    for mode in ("read", "analyse"):
        proc = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(path), mode],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        results[mode] = json.loads(proc.stdout)
    assert results["read"]["count"] == counts["events"]
    analysed = results["analyse"]
    assert analysed["count"] == counts["operations"]
    assert analysed["running"] == counts["running"] > 1000
    # Each VNet was written by several callers at every moment: one overlap per VNet, holding
    # every write on it (the still-running ones included) and the bot's refused subnet writes.
    assert analysed["overlaps"] == 5
    assert analysed["overlapping_operations"] == counts["operations"]
    # Every refusal is pinned on a write in flight on the VNet; the bot's refusals are a storm.
    assert analysed["conflicts"] == analysed["caused"] == counts["refused"] > 1000
    assert analysed["storms"] == 1
    # Reading holds one event at a time. The analysis holds a small record per operation,
    # about 1 KiB with everything it keeps while it works; a pairwise overlap search held one
    # record per pair of writes in flight together (180 MB for this file).
    assert results["read"]["growth_kib"] < size_kib // 20, (results, size_kib)
    assert analysed["growth_kib"] < 2 * counts["operations"], (results, counts)


def test_an_activity_log_page_from_the_emulator_is_analysed(tmp_path: Path) -> None:
    from armguard.arm.client import ArmClient, StaticIdentityCredential
    from armguard.testing import DEFAULT_SUBSCRIPTION, emulator

    rg = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
    vnet = f"{rg}/providers/Microsoft.Network/virtualNetworks/v"
    body = {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "s", "properties": {"addressPrefix": "10.0.1.0/24"}}],
        },
    }
    with emulator(clock=ManualClock()) as arm:
        pipeline = ArmClient(StaticIdentityCredential("pipeline"), endpoint=arm.base_url)
        bot = ArmClient(StaticIdentityCredential("ops-bot"), endpoint=arm.base_url)
        pipeline.request("PUT", rg, api_version="2021-04-01", body={"location": "eastus"})
        pipeline.request("PUT", vnet, api_version="2024-05-01", body=body)
        arm.advance(1)
        refused = bot.request(
            "PUT",
            f"{vnet}/subnets/s",
            api_version="2024-05-01",
            body={"properties": {"addressPrefix": "10.0.1.0/24"}},
        )
        assert refused.status == 409
        arm.advance(900)
        pipeline.request("GET", vnet, api_version="2024-05-01")  # lets the PUT settle
        page = pipeline.request(
            "GET",
            f"/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values",
            api_version="2015-04-01",
            params={"$filter": "eventTimestamp ge '2025-01-01T00:00:00Z'"},
        )
        pipeline.close()
        bot.close()
    assert page.status == 200
    export = tmp_path / "emulator.json"
    export.write_text(page.text)
    t = load_timeline([str(export)])
    (conflict,) = t.conflicts
    assert conflict.operation.caller == "ops-bot"
    assert conflict.operation.kind == "operation_in_progress"
    assert conflict.cause is not None
    assert (conflict.cause.caller, conflict.cause.resource_id, conflict.relation) == (
        "pipeline",
        vnet,
        "in_flight",
    )
    assert conflict.operation.operation_url == refused.classification().operation_url


def test_the_report_draws_every_operation_and_links_every_conflict_on_its_chart() -> None:
    from html.parser import HTMLParser

    from armguard.diagnose.report import render_report

    t = load_timeline([str(INCIDENT), str(JOBS)])
    page = render_report(t, generated_at=0.0)

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.bars: list[str] = []
            self.links: set[tuple[str, str]] = set()
            self.markers: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "g" and a.get("data-op"):
                self.bars.append(str(a["data-op"]))
            if tag == "path" and a.get("data-cause"):
                self.links.add((str(a["data-conflict"]), str(a["data-cause"])))
            if tag == "circle" and a.get("data-conflict"):
                self.markers.append(str(a["data-conflict"]))

    seen = Collect()
    seen.feed(page)
    assert sorted(seen.bars) == sorted(o.id for o in t.operations)
    assert sorted(seen.markers) == sorted(c.operation.id for c in t.conflicts)
    on_chart = {
        (c.operation.id, c.cause.id)
        for c in t.conflicts
        if c.cause is not None and c.relation != "lock"  # locks live on their own chart
    }
    assert seen.links == on_chart
    assert len(on_chart) == 12


def _burst(n: int, at: str = "2026-04-27T10:00:00Z") -> list[dict[str, Any]]:
    """n writes by 40 callers on a VNet and its subnets that all start and end at one logged
    moment (a deployment's burst in a coarse export), one in ten a bot's refused subnet write."""
    body = json.dumps(
        {
            "error": {
                "code": "AnotherOperationInProgress",
                "message": "Another operation on this or dependent resource is in progress.",
            }
        }
    )
    events: list[dict[str, Any]] = []
    for op in range(n):
        refused = op % 10 == 0
        resource = VNET if op % 3 == 0 else f"{VNET}/subnets/s{op % 30}"
        base = {
            "eventTimestamp": at,
            "resourceId": f"{VNET}/subnets/s1" if refused else resource,
            "operationName": {"value": "Microsoft.Network/virtualNetworks/subnets/write"},
            "caller": "bot" if refused else f"writer-{op % 40}",
            "operationId": f"op-{op}",
        }
        events.append({**base, "status": {"value": "Started"}})
        if refused:
            events.append(
                {
                    **base,
                    "status": {"value": "Failed"},
                    "subStatus": {"value": "Conflict"},
                    "properties": {"statusCode": "Conflict", "statusMessage": body},
                }
            )
        else:
            events.append({**base, "status": {"value": "Succeeded"}})
    return events


def test_twenty_thousand_events_at_one_moment_are_one_overlap(tmp_path: Path) -> None:
    # Pairwise, this is 50 million pairs of writes in flight together: minutes and gigabytes.
    log = tmp_path / "burst.json"
    log.write_text(json.dumps(_burst(10_000)))
    t = load_timeline([str(log)])
    assert len(t.operations) == 10_000
    (overlap,) = t.overlaps
    assert len(overlap.operations) == 10_000
    assert len(overlap.callers) == 37  # the bot and 36 writers (every tenth write is the bot's)
    assert overlap.relation == "parent/child"
    assert overlap.windows == ((overlap.start, overlap.start),)
    from armguard.diagnose.report import render_report

    page = render_report(t, generated_at=0.0)
    # The overlap's table cell lists the first 60 operations and counts the rest.
    assert "… and 9940 more" in page
    assert page.count('class="overlap"') == 1  # one window, one band
    assert len(t.conflicts) == 1_000
    for conflict in t.conflicts:
        # A writer on the refused subnet itself is preferred to one on the VNet.
        assert conflict.cause is not None
        assert conflict.cause.resource_id == f"{VNET}/subnets/s1"
        assert conflict.relation == "in_flight"


def test_the_work_of_overlaps_and_causes_grows_linearly(tmp_path: Path) -> None:
    """Counted steps, not time: 4x the events must cost about 4x the work (pairwise: 16x)."""
    work = {}
    for n in (1_000, 4_000):
        log = tmp_path / f"burst-{n}.json"
        log.write_text(json.dumps(_burst(n)))
        work[n] = load_timeline([str(log)]).steps
    for finding in ("overlaps", "causes"):
        assert work[4_000][finding] < 5 * work[1_000][finding], work


def test_events_naming_no_resource_are_skipped_and_counted(tmp_path: Path) -> None:
    base = {
        "eventTimestamp": "2026-04-27T10:00:00Z",
        "operationName": {"value": "Microsoft.Network/networkSecurityGroups/write"},
        "status": {"value": "Started"},
    }
    log = tmp_path / "al.json"
    log.write_text(
        json.dumps(
            [
                {**base, "resourceId": None, "caller": "a", "operationId": "1"},
                {**base, "resourceId": "", "caller": "b", "operationId": "2"},
                {**base, "resourceId": NSG, "caller": "c", "operationId": "3"},
            ]
        )
    )
    t = load_timeline([str(log)])
    # The null and the empty resource are not one resource called "".
    assert [o.resource_id for o in t.operations] == [NSG]
    assert t.inputs[0]["skipped_events"] == {"no resourceId": 2}
    assert any(n.startswith("2 events skipped (no resourceId)") for n in t.notes())
    only_bad = tmp_path / "bad.json"
    only_bad.write_text(json.dumps([{**base, "resourceId": None}]))
    with pytest.raises(SourceError, match="none of its 1 events names a resource"):
        load_timeline([str(only_bad)])


def test_a_caller_written_as_an_object_is_named_by_its_name_or_claims(tmp_path: Path) -> None:
    base = {
        "eventTimestamp": "2026-04-27T10:00:00Z",
        "resourceId": NSG,
        "operationName": {"value": "Microsoft.Network/networkSecurityGroups/write"},
        "status": {"value": "Started"},
    }
    upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
    log = tmp_path / "al.json"
    log.write_text(
        json.dumps(
            [
                {**base, "operationId": "1", "caller": {"name": "eve", "claims": {"appid": "x"}}},
                {**base, "operationId": "2", "caller": {"claims": {upn: "dan@contoso.com"}}},
                {**base, "operationId": "3", "caller": "", "claims": {"appid": "app-1"}},
                {**base, "operationId": "4", "caller": {"something": ["else"]}},
            ]
        )
    )
    callers = sorted(o.caller for o in load_timeline([str(log)]).operations)
    assert callers == ["(unknown caller)", "app-1", "dan@contoso.com", "eve"]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"resource_id": {"id": "x"}}, "'resource_id' is a JSON object, not a string"),
        ({"job_id": ["j"]}, "'job_id' is a JSON array, not a string"),
        ({"status": "409"}, "'status' is a JSON string, not an integer"),
        ({"status": 7}, "'status' 7 is not an HTTP status"),
        ({"attempt": True}, "'attempt' is a JSON bool, not an integer"),
    ],
)
def test_job_events_with_fields_of_the_wrong_type_are_refused(
    event: dict[str, Any], problem: str, tmp_path: Path
) -> None:
    good = {"ts": "2026-04-27T10:00:00Z", "job_id": "j", "resource_id": NSG, "writer": "w"}
    log = tmp_path / "jobs.jsonl"
    log.write_text(json.dumps({**good, "event": "write", **event}) + "\n")
    with pytest.raises(SourceError, match=re.escape(problem)):
        load_timeline([str(log)])


def test_times_are_kept_within_the_calendar() -> None:
    from armguard.clock import isoformat

    assert isoformat(parse_time("9999-12-31T23:59:59.9999999Z")).startswith("9999-12-31T23:59:59")
    with pytest.raises(ValueError, match="outside the years 1 to 9999"):
        parse_time("0001-01-01T00:00:00+05:00")
    with pytest.raises(ValueError, match="outside the years 1 to 9999"):
        parse_time_bound("99999999999999h", ManualClock())


def test_a_failure_body_nested_past_the_decoder_is_read_as_text(tmp_path: Path) -> None:
    deep = "[" * 1500 + "]" * 1500
    base = {
        "resourceId": NSG,
        "operationName": {"value": "Microsoft.Network/networkSecurityGroups/write"},
        "caller": "a",
        "operationId": "1",
        "properties": {"requestbody": deep},
    }
    log = tmp_path / "al.json"
    log.write_text(
        json.dumps(
            [
                {**base, "eventTimestamp": "2026-04-27T10:00:00Z", "status": "Started"},
                {
                    **base,
                    "eventTimestamp": "2026-04-27T10:00:01Z",
                    "status": "Failed",
                    "subStatus": "Conflict",
                    "properties": {"statusMessage": deep},
                },
            ]
        )
    )
    (op,) = load_timeline([str(log)]).operations
    assert (op.status, op.http_status, op.kind, op.token) == (
        "Failed",
        409,
        "unknown",
        "not_in_body",
    )
