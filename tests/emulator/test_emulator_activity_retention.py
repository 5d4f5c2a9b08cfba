"""The Activity Log's retention: by events and by bytes, through a real emulator, and events of
refused requests that keep a bounded part of what the caller sent."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from arm_helpers import RG, SUB, VNET, Arm

from armguard.clock import ManualClock
from armguard.emulator.core import Emulator
from armguard.emulator.event_bounds import MAX_CHARS, MAX_ERROR_CHARS
from armguard.emulator.server import serve

LOG = f"{SUB}/providers/Microsoft.Insights/eventtypes/management/values"
WINDOW = "eventTimestamp ge '2020-01-01T00:00:00Z'"
LINE = re.compile(r"^armguard emulator listening on (http://127\.0\.0\.1:\d+)\n$")


def all_pages(arm: Arm) -> tuple[list[dict[str, Any]], int]:
    """Every event, newest first, following nextLink; and how many pages it took."""
    response = arm.get(LOG, params={"$filter": WINDOW})
    pages = 1
    assert response.status_code == 200, response.text
    out = list(response.json()["value"])
    while (link := response.json().get("nextLink")) is not None:
        response = arm.request("GET", link)
        assert response.status_code == 200, response.text
        out.extend(response.json()["value"])
        pages += 1
    return out, pages


@pytest.fixture
def process() -> Iterator[Any]:
    """``start(*flags)``: a real ``armguard emulator`` process; stopped at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "armguard.cli.main", "emulator", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        match = LINE.match(proc.stdout.readline())
        assert match is not None, proc.stderr.read() if proc.stderr else ""
        return match.group(1)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 0


def write_group(arm: Arm, n: int) -> None:
    response = arm.put(
        RG,
        {"location": "eastus", "tags": {"n": str(n)}},
        headers={"x-ms-correlation-request-id": f"write-{n}"},
    )
    assert response.status_code in (200, 201), response.text


def test_retention_by_events_keeps_the_newest_and_pages_them(process: Any) -> None:
    arm = Arm(process("--activity-retention", "6", "--page-size", "4", "--time-scale", "0"))
    try:
        # A group write is synchronous: a Started and a Succeeded event each.
        for n in range(5):
            write_group(arm, n)
        events, pages = all_pages(arm)
    finally:
        arm.close()
    assert pages == 2
    assert [(e["correlationId"], e["status"]["value"]) for e in events] == [
        ("write-4", "Succeeded"),
        ("write-4", "Started"),
        ("write-3", "Succeeded"),
        ("write-3", "Started"),
        ("write-2", "Succeeded"),
        ("write-2", "Started"),
    ]


def test_retention_by_bytes_drops_the_oldest(process: Any) -> None:
    # A group write's events are ~1.3 KB each by the estimate (a token's claims included):
    # 24 KB holds the last ten or so writes, not all twenty (forty events).
    arm = Arm(process("--activity-memory", str(24 / 1024), "--time-scale", "0"))
    try:
        for n in range(20):
            write_group(arm, n)
        events, _ = all_pages(arm)
    finally:
        arm.close()
    kept = [e["correlationId"] for e in events]
    assert 2 <= len(kept) < 40
    assert kept[0] == "write-19"
    assert "write-0" not in kept
    # What was kept is the newest run of events, none missing in between.
    newest = sorted({int(k.split("-")[1]) for k in kept})
    assert newest == list(range(newest[0], 20))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--activity-retention", "0"], "--activity-retention must be >= 1"),
        (["--activity-memory", "0"], "--activity-memory must be a number of megabytes > 0"),
        (["--activity-memory", "nan"], "--activity-memory must be a number of megabytes > 0"),
    ],
)
def test_bad_retention_is_a_cli_error(flags: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "emulator", *flags],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_request_with_huge_values_leaves_a_bounded_event() -> None:
    server = serve(Emulator(ManualClock(), seed=3, time_scale=0))
    arm = Arm(server.base_url)
    try:
        arm.put(RG, {"location": "eastus"})
        huge = "9" * 20_000
        refused = arm.http.put(
            VNET,
            params={"api-version": huge},
            json={"location": "eastus", "tags": {"k": "v" * 200_000}},
            headers={
                "x-ms-correlation-request-id": "c" * 8_000,
                "x-ms-client-request-id": "r" * 8_000,
            },
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "InvalidApiVersionParameter"
        response = arm.get(LOG, params={"$filter": f"{WINDOW} and resourceUri eq '{VNET}'"})
        assert response.status_code == 200, response.text
        started, failed = reversed(response.json()["value"])
    finally:
        arm.close()
    assert (started["status"]["value"], failed["status"]["value"]) == ("Started", "Failed")
    marker = re.compile(r"\.\.\.\[\d+ more characters\]$")
    for event in (started, failed):
        # 236,000 characters sent; kept: four clipped values (the URI, two headers and the
        # error's message, shown in statusMessage and responseBody) and the event's own fields.
        assert len(json.dumps(event)) < 8 * MAX_CHARS
        uri = event["httpRequest"]["uri"]
        assert uri.startswith(f"{server.base_url}{VNET}?api-version=999")
        assert len(uri) <= MAX_CHARS + 30
        assert marker.search(uri)
        assert marker.search(event["correlationId"])
        assert marker.search(event["httpRequest"]["clientRequestId"])
    # The failure body is still the JSON ARM puts there, its quoted value clipped.
    status = json.loads(failed["properties"]["statusMessage"])
    assert len(failed["properties"]["statusMessage"]) <= MAX_ERROR_CHARS
    assert status["error"]["code"] == "InvalidApiVersionParameter"
    assert "more characters]" in status["error"]["message"]
    assert len(status["error"]["message"]) <= MAX_CHARS + 30


def test_retention_keeps_paging_stable_while_events_go(process: Any) -> None:
    # Events dropped between two pages are neither repeated nor do they break the link.
    base = process("--activity-retention", "8", "--page-size", "3", "--time-scale", "0")
    arm = Arm(base)
    try:
        for n in range(4):
            write_group(arm, n)
        first = arm.get(LOG, params={"$filter": WINDOW})
        assert first.status_code == 200
        link = first.json()["nextLink"]
        for n in range(4, 6):
            write_group(arm, n)
        second = arm.request("GET", link)
        assert second.status_code == 200, second.text
    finally:
        arm.close()
    # Of the first page's successors, write-2's start is left; write-0 and write-1 have gone
    # by then, and the newer writes are before the link's position, so not on its pages.
    assert [(e["correlationId"], e["status"]["value"]) for e in first.json()["value"]] == [
        ("write-3", "Succeeded"),
        ("write-3", "Started"),
        ("write-2", "Succeeded"),
    ]
    assert [(e["correlationId"], e["status"]["value"]) for e in second.json()["value"]] == [
        ("write-2", "Started"),
    ]
    assert "nextLink" not in second.json()
    assert httpx.URL(link).params.get("$skiptoken")
