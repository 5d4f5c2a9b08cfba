"""The script-facing CLI: submit → worker → wait/jobs/scopes, and ERROR: … exit 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from armguard.cli.main import main
from armguard.events import JobEvent

VNET = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet1"


def armguard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a child process, as scripts run it."""
    return subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "250"},
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same entry point in-process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resource", "/subscriptions", "--tag", "a=1"], "is not valid"),
        (["--resource", VNET, "--merge", "{not json"], "--merge is not valid JSON"),
        (["--resource", VNET, "--merge", "[1]"], "must be a JSON object"),
        (["--resource", VNET], "give one intent"),
        (["--resource", VNET, "--tag", "a=1", "--delete"], "exactly one intent"),
        (["--resource", VNET, "--tag", "novalue"], "KEY=VALUE"),
        (["--resource", VNET, "--action", "a/b"], "without '/'"),
        (["--tag", "a=1"], "--resource is required"),
        (
            [
                "--resource",
                "/subscriptions/s/resourceGroups/rg/providers/Contoso.Widgets/widgets/w",
                "--tag",
                "a=1",
            ],
            "--api-version",
        ),
    ],
)
def test_bad_submit_input_is_an_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = cli(capsys, "submit", "--store", str(tmp_path / "s.db"), "--writer", "w", *args)
    assert code == 2, err
    assert err.startswith("ERROR: ")
    assert message in err


def test_bad_input_never_prints_a_traceback() -> None:
    proc = armguard(
        "submit",
        "--store",
        "/nonexistent/dir/s.db",
        "--writer",
        "w",
        "--resource",
        VNET,
        "--merge",
        "{",
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ERROR: ")
    assert "Traceback" not in proc.stderr


def test_missing_store_and_bad_store_url_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ARMGUARD_STORE", raising=False)
    code, _, err = cli(capsys, "jobs")
    assert code == 2
    assert "--store is required" in err
    code, _, err = cli(capsys, "jobs", "--store", "mysql://u:secret@h/db")
    assert code == 2
    assert "secret" not in err
    assert err.startswith("ERROR: ")


def test_submit_prints_the_id_and_jobs_lists_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    code, out, err = cli(
        capsys,
        "submit",
        "--store",
        store,
        "--resource",
        VNET,
        "--writer",
        "alice",
        "--tag",
        "env=prod",
        "--untag",
        "old",
        "--idempotency-key",
        "k1",
    )
    assert code == 0, err
    job_id = out.strip()
    code, out, _ = cli(
        capsys,
        "submit",
        "--store",
        store,
        "--resource",
        VNET,
        "--writer",
        "alice",
        "--tag",
        "env=prod",
        "--idempotency-key",
        "k1",
        "--output",
        "json",
    )
    assert json.loads(out)["id"] == job_id  # the key makes the submit idempotent
    code, out, _ = cli(capsys, "jobs", "--store", store, "--output", "json")
    listed = json.loads(out)
    assert [j["id"] for j in listed] == [job_id]
    assert listed[0]["intent"] == {"kind": "tags", "set": {"env": "prod"}, "remove": ["old"]}
    assert listed[0]["state"] == "queued"
    assert listed[0]["lockKeys"] == [VNET.lower()]
    code, out, _ = cli(capsys, "jobs", "--store", store, "--state", "done", "--output", "json")
    assert json.loads(out) == []
    code, _, err = cli(capsys, "wait", job_id, "--store", store, "--timeout", "0")
    assert code == 1
    assert "still queued" in err
    code, _, err = cli(capsys, "wait", "nope", "--store", store, "--timeout", "0")
    assert code == 2
    assert "no job 'nope'" in err


RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
FAST = {
    "Microsoft.Network/virtualNetworks": {
        "durations": {"create": 0.0, "update": 0.0, "delete": 0.0, "default": 0.0}
    }
}


def test_submit_worker_wait_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from armguard.arm.client import ArmClient, StaticIdentityCredential
    from armguard.clock import SystemClock
    from armguard.testing import emulator

    store = str(tmp_path / "jobs.db")
    with emulator(clock=SystemClock(), type_settings=FAST) as arm:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=arm.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        body = {
            "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
        }
        assert setup.request("PUT", VNET, api_version="2024-05-01", body=body).ok
        ids = []
        for intent in (["--tag", "env=prod"], ["--merge", '{"tags": {"team": "net"}}']):
            code, out, err = cli(
                capsys, "submit", "--store", store, "--resource", VNET, "--writer", "alice", *intent
            )
            assert code == 0, err
            ids.append(out.strip())
        missing = VNET.replace("/rg/", "/nowhere/")
        code, out, _ = cli(
            capsys,
            "submit",
            "--store",
            store,
            "--resource",
            missing,
            "--writer",
            "bob",
            "--put",
            '{"location": "eastus"}',
        )
        ids.append(out.strip())

        proc = armguard(
            "worker",
            "--store",
            store,
            "--endpoint",
            arm.base_url,
            "--until-idle",
            "--concurrency",
            "2",
            "--output",
            "json",
        )
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["outcomes"] == {"applied": 2, "failed": 1}
        assert summary["armWrites"] == 2  # the two VNet intents folded into one write
        assert "jobs:" in proc.stderr  # progress on stderr

        code, out, _ = cli(capsys, "wait", ids[0], "--store", store)
        assert (code, out.strip()) == (0, "applied")
        code, out, _ = cli(capsys, "wait", ids[2], "--store", store, "--output", "json")
        assert code == 1
        failed = json.loads(out)
        assert failed["outcome"] == "failed"
        assert failed["kind"] == "not_found"
        live = setup.request("GET", VNET, api_version="2024-05-01").body
        assert live["tags"] == {"env": "prod", "team": "net"}
        code, out, err = cli(capsys, "events", "--store", store, "--job", ids[0])
        assert code == 0, err
        steps = [JobEvent.from_json(line) for line in out.splitlines()]
        assert {e.job_id for e in steps} == {ids[0]}
        assert steps[0].event == "claimed"
        assert {"write", "applied"} <= {e.event for e in steps}
        code, out, _ = cli(capsys, "events", "--store", store, "--resource", VNET.upper())
        assert {json.loads(line)["job_id"] for line in out.splitlines()} == set(ids[:2])
        code, _, err = cli(capsys, "events", "--store", store, "--job", "nope")
        assert code == 2
        assert "no job 'nope'" in err
        code, out, _ = cli(capsys, "scopes", "--store", store, "--output", "json")
        assert code == 0
        assert json.loads(out) == []
        code, out, _ = cli(capsys, "jobs", "--store", store, "--state", "done", "--output", "json")
        assert code == 0
        assert [(j["outcome"], j["kind"]) for j in json.loads(out)] == [
            ("applied", None),
            ("applied", None),
            ("failed", "not_found"),
        ]


def test_worker_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = str(tmp_path / "jobs.db")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "worker",
            "--store",
            store,
            "--endpoint",
            "http://127.0.0.1:9",
            "--metrics-port",
            str(port),
            "--output",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        started = proc.stderr.readline()  # printed once the signal handlers are in place
        assert started.startswith("worker "), started
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "armguard_queue_depth" in scraped
        assert "armguard_conflicts_total" in scraped
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["batches"] == 0
    assert "stopping" in err
    assert "Traceback" not in err
