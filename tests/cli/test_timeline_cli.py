"""``armguard timeline`` end to end: tables, JSON, the HTML file, and every bad input → exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
                    "caller": "[/]x",
                    "status": "Started",
                }
            ]
        )
    )
    assert main(["timeline", str(log)]) == 0
    assert "[/]x" in capsys.readouterr().out
