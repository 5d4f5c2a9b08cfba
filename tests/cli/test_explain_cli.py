"""``armguard explain`` as a user runs it: a real process, real stdin, exit codes and streams."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armguard.cli.main import main

ARMGUARD = str(Path(sys.executable).with_name("armguard"))
OP_URL = (
    "https://management.azure.com/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
    "Microsoft.Network/locations/eastus/operations/3f9b2c1a?api-version=2024-05-01"
)
AZ_ERROR = (
    "ERROR: (Conflict) Another operation on this or dependent resource is in progress. To "
    f"retrieve status of the operation use uri: {OP_URL}.\nCode: Conflict\nMessage: Another "
    f"operation on this or dependent resource is in progress. To retrieve status of the "
    f"operation use uri: {OP_URL}.\n"
)


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [ARMGUARD, "explain", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def test_text_argument_prints_the_explanation_table() -> None:
    result = run(AZ_ERROR)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "operation_in_progress" in out
    for heading in ("What it means", "Safe recovery", "Wrong fix to avoid", "Next commands"):
        assert heading in out
    assert f"1. Poll {OP_URL} until its status is Succeeded, Failed or Canceled." in out
    assert f'az rest --method get --url "{OP_URL}"' in out
    assert result.stderr == ""


def test_dash_reads_stdin_and_json_output_is_machine_readable() -> None:
    result = run("-", "--output", "json", stdin=AZ_ERROR.encode())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "operation_in_progress"
    assert data["status"] == 409
    assert data["operationUrl"] == OP_URL
    assert data["recovery"]
    assert data["wrongFix"]
    assert {c["tool"] for c in data["nextCommands"]} == {"az", "armguard"}


def test_piped_stdin_without_an_argument_is_read() -> None:
    body = {
        "error": {
            "code": "ScopeLocked",
            "message": "following scope(s) are locked: '/subscriptions/s'. Please remove",
        }
    }
    result = run("-o", "json", stdin=json.dumps(body).encode())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "locked"
    assert data["lockedScopes"] == ["/subscriptions/s"]


def test_unknown_kind_with_a_code_still_exits_zero() -> None:
    result = run("-o", "json", stdin=b'Code="SomethingBrandNew" Message="never seen"')
    assert result.returncode == 0
    assert json.loads(result.stdout)["kind"] == "unknown"


def test_text_without_an_error_is_a_usage_error() -> None:
    result = run("the deployment succeeded, all good")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("ERROR: no error found in the input")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        # Texts plainly errors that an ARM-only reader used to refuse.
        "InternalError : The server encountered an internal error. Please retry the request.",
        "Too many requests. Please retry after 60 seconds.",
        "Error type: 412 Error Message: ETag does not represent the latest state of the resource.",
        "The condition '*' in the If-None-Match header was satisfied",
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The '
        "server is busy.</Message></Error>",
        "Get-AzResource : Something went wrong\n+ CategoryInfo : CloseError: (:) [Get-AzResource]",
        "java.lang.IllegalStateException: lease lost",
    ],
)
def test_a_text_with_an_error_in_it_is_never_refused(text: str) -> None:
    result = run("-o", "json", text)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"]
    assert data["confidence"] in ("high", "medium", "low")


def test_json_says_how_sure_and_which_words_decided() -> None:
    data = json.loads(run("-o", "json", AZ_ERROR).stdout)
    assert data["kind"] == "operation_in_progress"
    assert data["confidence"] == "high"
    assert any("another operation on this or dependent resource" in e for e in data["decidedBy"])
    assert data["errors"][0]["confidence"] == "high"
    bare = json.loads(run("-o", "json", "HTTP 404 somewhere").stdout)
    assert (bare["kind"], bare["confidence"], bare["decidedBy"]) == (
        "not_found",
        "low",
        ["status:404"],
    )
    unknown = json.loads(run("-o", "json", 'Code="SomethingBrandNew" Message="x"').stdout)
    assert (unknown["kind"], unknown["confidence"]) == ("unknown", "low")


def test_table_shows_the_confidence_and_its_reasons() -> None:
    out = run(AZ_ERROR).stdout
    line = next(line for line in out.splitlines() if line.startswith("Confidence"))
    assert "high" in line
    assert "decided by" in line


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "ERROR: input is empty"),
        (b"   \n\t\n", "ERROR: input is empty"),
        (b"\x00\x01\x02\x03ELF", "ERROR: input is binary"),
        (bytes(range(128, 256)) * 50, "ERROR: input is not UTF-8 text"),
    ],
)
def test_bad_input_gets_a_clear_error(stdin: bytes, message: str) -> None:
    result = run("-", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def _ci_log(lines: int, middle: bytes = b"", end: bytes = b"") -> bytes:
    step = b"2026-12-05T10:00:00.0000000Z ##[section]step ok: compiled module, 0 warnings\n"
    half = step * (lines // 2)
    return half + middle + half + end


def test_a_long_log_is_read_as_a_stream_and_its_error_found() -> None:
    # 11 MB: larger than any paste limit; the error is at the end.
    log = _ci_log(140_000, end=AZ_ERROR.encode())
    assert len(log) > 10_000_000
    result = run("-", "-o", "json", stdin=log, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "operation_in_progress"
    assert data["input"] == {"bytes": len(log), "excerpted": True}


def test_an_error_in_the_middle_of_a_long_log_is_kept() -> None:
    locked = (
        b'{"error": {"code": "ScopeLocked", "message": "The scope \'/subscriptions/0/'
        b"resourceGroups/rg' cannot perform write operation because following scope(s) are "
        b"locked: '/subscriptions/0/resourceGroups/rg'. Please remove the lock and try again.\"}}\n"
    )
    log = _ci_log(60_000, middle=locked)
    result = run("-", stdin=log, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Read 4.6 MB: explained its start, its end and ")
    assert any(line.startswith("Kind") and "locked" in line for line in result.stdout.splitlines())


def test_no_argument_on_a_terminal_is_a_usage_error() -> None:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [ARMGUARD, "explain"],
            stdin=secondary,
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("ERROR: give the error text as an argument")


def test_markup_in_the_error_is_printed_literally() -> None:
    result = run('Code="InvalidTemplate" Message="bad [bold]value[/bold] at [0]"')
    assert result.returncode == 0, result.stderr
    assert "[bold]value[/bold]" in result.stdout


_FRAGMENTS = st.sampled_from(
    [
        AZ_ERROR,
        '{"error": {"code": "AnotherOperationInProgress", "message": "busy"}}',
        '{"status": "Failed", "error": {"code": "Conflict", "details": [',
        "[" * 3000,
        "{" * 3000,
        '{"a":' * 2000 + "1" + "}" * 2000,
        '"' + '\\"' * 500,
        "Code: PreconditionFailed\nMessage: ",
        "Message: a\n" * 50,
        "RESPONSE 409: 409 Conflict\nERROR CODE: ",
        "HTTP 999 ",
        'Status=<nil> Code="" Message=""',
        "\x1b[31m│ Error: \x1b[0m",
        "/subscriptions/../resourceGroups/{rg}/providers/x/y/z",
        "Retry-After: 1e999\n",
        "x-ms-retry-after-ms: nan\n",
        "[bold]x[/bold] [/]",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=40)), min_size=1, max_size=6))
def test_odd_text_ends_in_exit_0_or_2_never_a_traceback(parts: list[str]) -> None:
    text = "".join(parts)
    for output in ("json", "table"):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            # "--" so that a text starting with "-" is the text, not an option.
            code = main(["explain", "-o", output, "--", text])
        assert code in (0, 2), stderr.getvalue()
        if code == 2:
            assert stderr.getvalue().startswith("ERROR: ")
        elif output == "json":
            assert "kind" in json.loads(stdout.getvalue())


def test_a_kubernetes_error_gets_a_kind_and_a_note() -> None:
    result = run(
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "Note: this looks like a Kubernetes API error, not an Azure one; the kind below is "
        "Azure's reading of its words (low confidence)."
    )


def test_an_activity_log_export_lists_its_errors_and_explains_the_most_severe() -> None:
    incident = Path(__file__).parents[1] / "diagnose" / "data" / "incident.json"
    result = run("-", stdin=incident.read_bytes())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("4 distinct errors in 11 error bodies; the most severe")
    assert lines[1].startswith("  1 × locked: 409 ScopeLocked — The scope")
    assert lines[4].startswith("  7 × operation_in_progress: 409 AnotherOperationInProgress")
    assert any(line.startswith("Kind") and "locked" in line for line in lines)
    data = json.loads(run("-", "-o", "json", stdin=incident.read_bytes()).stdout)
    assert data["kind"] == "locked"
    assert len(data["errors"]) == 4
