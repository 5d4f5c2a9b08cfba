"""``armguard timeline`` end to end: tables, JSON, the HTML file, and every bad input → exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armguard.cli.main import main

DATA = Path(__file__).parents[1] / "diagnose" / "data"
INCIDENT = str(DATA / "incident.json")
JOBS = str(DATA / "jobs.jsonl")
RG = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/prod-rg"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-app"


def test_table_output_summarises_each_resource_and_names_causes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["timeline", INCIDENT, JOBS]) == 0
    out = capsys.readouterr().out
    assert "Writes per resource" in out
    assert "Conflicts and their causes" in out
    assert "in_flight" in out
    assert "lock" in out
    assert "Retry storms" in out
    assert "ops-bot" in out
    assert "Note: The Activity Log records request bodies but never request headers" in out


def test_json_output_has_stable_keys_and_filters_apply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "timeline",
                INCIDENT,
                "--resource",
                NSG,
                "--since",
                "2026-04-27T10:00:00Z",
                "--until",
                "2026-04-27T11:00:00Z",
                "--output",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert list(data) == [
        "headline",
        "inputs",
        "window",
        "settings",
        "resources",
        "overlaps",
        "conflicts",
        "retry_storms",
        "stale_replays",
        "tokenless_writers",
        "operations",
        "marks",
        "notes",
    ]
    assert [r["resource_id"] for r in data["resources"]] == [NSG]
    assert data["resources"][0]["conflicts"] == {"stale_version": 2}
    assert data["resources"][0]["stale_replays"] == 1
    assert data["settings"]["resource"] == NSG
    assert data["stale_replays"][0]["caller"] == "tag-normalizer"


def test_storm_settings_come_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["timeline", INCIDENT, "-o", "json", "--storm-retries", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["retry_storms"]) == 1
    assert main(["timeline", INCIDENT, "-o", "json", "--storm-window", "5s"]) == 0
    assert json.loads(capsys.readouterr().out)["retry_storms"] == []


def test_relative_since_keeps_recent_events_only(capsys: pytest.CaptureFixture[str]) -> None:
    # The fixture is from April 2026 and the clock is later: "2h" leaves nothing.
    assert main(["timeline", INCIDENT, "--since", "2h", "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["operations"] == []
    assert "No operations match" in captured.err


def test_html_report_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.html"
    assert main(["timeline", INCIDENT, JOBS, "--html", str(report), "-o", "json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays pure JSON
    assert f"Report written to {report}" in captured.err
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # 7 subnet 409s, 2 NSG 412s, 2 job 412s, 1 VM 409; the lock lives on another chart.
    assert text.count("conflict-link") == 12
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resource", "not-an-id"], "--resource: The resource ID 'not-an-id' is not valid"),
        (["--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time"),
        (
            ["--since", "2026-04-28T00:00:00Z", "--until", "2026-04-27T00:00:00Z"],
            "is after --until",
        ),
        (["--storm-window", "soon"], "--storm-window 'soon' is not a positive duration"),
        (["--storm-retries", "0"], "--storm-retries must be at least 1"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timeline", INCIDENT, *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_files_are_usage_errors_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truncated = tmp_path / "truncated.json"
    truncated.write_text(Path(INCIDENT).read_text()[:5000])
    empty = tmp_path / "empty.json"
    empty.write_text("")
    cases = {
        str(truncated): "the JSON is truncated",
        str(empty): "the file is empty",
        str(tmp_path): "is a directory",
        str(tmp_path / "missing.json"): "no such file",
    }
    for path, problem in cases.items():
        assert main(["timeline", INCIDENT, path]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ERROR: {path}: "), err
        assert problem in err


def test_html_target_problems_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timeline", INCIDENT, "--html", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["timeline", INCIDENT, "--html", str(tmp_path / "no" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_installed_command_fails_cleanly_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "words.txt"
    bad.write_text("this is not a log\n")
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "timeline", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ERROR: {bad}: not an Activity Log export")
    assert "Traceback" not in proc.stderr


def test_log_text_is_not_rich_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "markup.json"
    log.write_text(
        json.dumps(
            [
                {
                    "eventTimestamp": "2026-04-27T10:00:00Z",
                    "resourceId": NSG,
                    "operationName": "Microsoft.Network/networkSecurityGroups/write",
                    "caller": caller,
                    "operationId": caller,
                    "status": "Started",
                }
                for caller in ("[bold]eve[/bold]", "[/]x")
            ]
        )
    )
    assert main(["timeline", str(log)]) == 0
    out = capsys.readouterr().out
    # Printed as written: not styled, and not escaped twice into "\[bold]".
    (row,) = [line for line in out.splitlines() if "nsg-app" in line]
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[1] == "[/]x, [bold]eve[/bold]"
    assert "\\[" not in out


# --- odd inputs: exit 0 or 2, never a traceback ---------------------------------------------

_ODD_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
        "2026-04-27T10:00:00Z",
        "2026-04-27T10:00:00.5+05:30",
        "2026-02-30T10:00:00Z",
        "not a time",
        "",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    _ODD_TIMES,
    st.sampled_from([NSG, f"{NSG}/securityRules/r", "/subscriptions/x", "[/]x", "<b>", "409"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_GOOD_TIMES = st.sampled_from(
    ["0001-01-01T00:00:00Z", "2026-04-27T10:00:00Z", "2026-04-27T10:00:01.1234567Z"]
)
_TIMES = st.integers(0, 9).flatmap(lambda n: _ODD_TIMES if n == 0 else _GOOD_TIMES)
_RESOURCES = st.one_of(st.just(NSG), st.just(f"{NSG}/securityRules/r"), _VALUES)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten a well-formed value, so the analysis is reached; else anything."""
    return st.integers(0, 9).flatmap(lambda n: _VALUES if n == 0 else good)


# Well-formed enough to be recognised, with odd values anywhere, so that every stage (reading,
# grouping, classifying, the sweep, tables, JSON, the HTML report) meets them.
_ACTIVITY = st.fixed_dictionaries(
    {
        "eventTimestamp": _TIMES,
        "resourceId": _mostly(st.just(NSG)),
        "operationName": _mostly(
            st.just({"value": "Microsoft.Network/networkSecurityGroups/write"})
        ),
    },
    optional={
        "caller": _mostly(st.sampled_from(["alice", "bob", "[bold]eve[/bold]"])),
        "status": _mostly(
            st.sampled_from([{"value": v} for v in ("Started", "Failed", "Succeeded")])
        ),
        "subStatus": _mostly(st.sampled_from([{"value": "Conflict"}, "409", "OK"])),
        "operationId": _mostly(st.sampled_from(["o1", "o2"])),
        "correlationId": _VALUES,
        "eventName": _VALUES,
        "claims": _VALUES,
        "properties": _mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "statusCode": _VALUES,
                    "statusMessage": _mostly(
                        st.sampled_from(
                            [
                                '{"error":{"code":"AnotherOperationInProgress","message":"x"}}',
                                '{"error":{"code":"PreconditionFailed","message":"y"}}',
                                "[" * 1500 + "]" * 1500,
                            ]
                        )
                    ),
                    "requestbody": _mostly(st.sampled_from(['{"etag":"W/1"}', "{", "[" * 1500])),
                },
            )
        ),
    },
)
_JOB = st.fixed_dictionaries(
    {
        "ts": _TIMES,
        "job_id": _mostly(st.sampled_from(["j1", "j2"])),
        "resource_id": _RESOURCES,
        "writer": _mostly(st.sampled_from(["writer-a", "writer-b"])),
        "event": _mostly(st.sampled_from(["write", "conflict", "applied", "failed", "waiting"])),
    },
    optional=dict.fromkeys(("verb", "status", "code", "message", "etag_sent", "kind"), _VALUES),
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(st.one_of(_ACTIVITY, _JOB), max_size=6),
    fmt=st.sampled_from(["json", "table"]),
)
def test_odd_events_end_in_exit_0_or_2_never_a_traceback(
    events: list[dict[str, Any]], fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "odd.json"
    log.write_text(json.dumps(events))
    code = main(["timeline", str(log), "-o", fmt, "--html", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("ERROR: "), err


@pytest.mark.parametrize(
    ("content", "args", "problem"),
    [
        (_nested(5000), [], "nested too deeply"),
        (
            '[{"eventTimestamp": "2026-04-27T10:00:00Z", "x": ' + _nested(5000) + "}]",
            [],
            "nested too deeply",
        ),
        ("\n".join(['{"a": ' + _nested(3000) + "}"] * 2), [], "nested too deeply"),
        (None, ["--since", "99999999999999h"], "--since"),
        (None, ["--until", "99999999999999999999d"], "--until"),
        (None, ["--since", "9999-12-31T23:59:59Z", "--until", "10000000000000000h"], "--until"),
    ],
)
def test_inputs_past_what_python_can_represent_are_usage_errors(
    content: str | None, args: list[str], problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "odd.json"
    if content is None:
        path.write_text(Path(INCIDENT).read_text())
    else:
        path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "timeline", str(path), *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("ERROR: ")
    assert problem in proc.stderr


def test_events_dated_year_1_and_year_9999_draw_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ages.json"
    log.write_text(
        json.dumps(
            [
                {
                    "eventTimestamp": ts,
                    "resourceId": NSG,
                    "operationName": "Microsoft.Network/networkSecurityGroups/write",
                    "caller": caller,
                    "operationId": caller,
                    "status": "Started",
                }
                for ts, caller in (
                    ("0001-01-01T00:00:00Z", "early"),
                    ("9999-12-31T23:59:59Z", "late"),
                )
            ]
        )
    )
    report = tmp_path / "r.html"
    assert main(["timeline", str(log), "--html", str(report), "-o", "json"]) == 0
    capsys.readouterr()
    text = report.read_text()
    # The axis spans the calendar: ticks on round years, none outside it.
    ticks = re.findall(r'class="tick"[^>]*>([^<]*)<', text)
    assert ticks[:2] == ["2000-01-01", "4000-01-01"]
    assert ticks[-1] == "8000-01-01"
    assert "One time axis (UTC) for every chart: 0001-01-01" in text


def test_piped_tables_keep_the_end_of_long_ids_so_rows_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rg = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/platform-networking-production-westeurope-rg"
    vnet = f"{rg}/providers/Microsoft.Network/virtualNetworks/hub-vnet-westeurope-production-0001"
    names = [
        f"subnet-application-{tier}-tier-00{n}"
        for tier, n in (("front", 1), ("front", 2), ("back", 1))
    ]
    log = tmp_path / "long.json"
    log.write_text(
        json.dumps(
            [
                {
                    "eventTimestamp": "2026-04-27T10:00:00Z",
                    "resourceId": f"{vnet}/subnets/{name}",
                    "operationName": "Microsoft.Network/virtualNetworks/subnets/write",
                    "caller": "pipeline",
                    "operationId": name,
                    "status": "Started",
                }
                for name in names
            ]
        )
    )
    assert main(["timeline", str(log)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "pipeline" in line]
    cells = [line.strip("│ ").split("│")[0].strip() for line in rows]
    assert sorted(cells) == sorted(f"…/{name}" for name in names)


def test_cut_ids_that_would_look_the_same_keep_more() -> None:
    from armguard.diagnose.timeline import fit_resource_ids

    rg = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/prod"
    ids = [
        f"{rg}/providers/Microsoft.Network/virtualNetworks/{v}/subnets/default" for v in ("a", "b")
    ]
    shown = fit_resource_ids(ids, 16)
    assert len(set(shown.values())) == 2
    assert all(text.endswith("/subnets/default") for text in shown.values())
    assert fit_resource_ids([NSG], 200) == {NSG: "prod-rg/networkSecurityGroups/nsg-app"}
