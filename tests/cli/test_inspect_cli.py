"""``armguard inspect`` against the served emulator: exit codes, table and JSON, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.cli.main import main
from armguard.testing import DEFAULT_SUBSCRIPTION, EmulatorHandle, ManualClock, emulator

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/prod-rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/api-01"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-prod"


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    # The command reads "the last hour" on the system clock, so the emulator's manual clock
    # starts 50 minutes before now (the setup below moves it 15 minutes on); it still only
    # moves when the test advances it.
    with emulator(clock=ManualClock(start=time.time() - 3000)) as handle:
        writer = ArmClient(
            StaticIdentityCredential("pipeline@contoso.com"), endpoint=handle.base_url
        )
        writer.request("PUT", RG, api_version="2021-04-01", body={"location": "eastus"})
        writer.request(
            "PUT",
            VM,
            api_version="2024-07-01",
            body={
                "location": "eastus",
                "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}},
            },
        )
        handle.advance(900)
        writer.close()
        yield handle


def test_a_clear_vm_exits_0_with_the_verdict(
    arm: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", VM, "--endpoint", arm.base_url]) == 0
    out = capsys.readouterr().out
    assert "Verdict: A write would go through now" in out
    assert "running" in out
    assert "Recent writes (Activity Log)" in out
    assert main(["inspect", VM, "--endpoint", arm.base_url, "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [w["caller"] for w in data["recent_writes"]] == ["pipeline@contoso.com"]
    assert data["verdict"] == {
        "would_succeed": True,
        "summary": "A write would go through now: nothing holds, locks or outdates it.",
        "blockers": [],
    }


def test_a_running_vm_resize_exits_1_and_says_deallocate_first(
    arm: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "inspect",
            VM,
            "--endpoint",
            arm.base_url,
            "--intent",
            "resize:Standard_D4s_v5",
            "-o",
            "json",
        ]
    )
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"]["would_succeed"] is False
    (blocker,) = data["verdict"]["blockers"]
    assert blocker["kind"] == "state_prerequisite"
    assert data["power_state"] == "running"
    assert data["intent"] == "resize:Standard_D4s_v5"


def test_a_locked_group_and_a_stale_etag_both_show(
    arm: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = ArmClient(StaticIdentityCredential("governance@contoso.com"), endpoint=arm.base_url)
    admin.request(
        "PUT",
        f"{RG}/providers/Microsoft.Authorization/locks/freeze",
        api_version="2020-05-01",
        body={"properties": {"level": "ReadOnly"}},
    )
    admin.close()
    code = main(["inspect", VM, "--endpoint", arm.base_url, "--etag", '"0"'])
    assert code == 1
    out = capsys.readouterr().out
    assert "What a write would hit now" in out
    assert "locked" in out
    assert "stale_version" in out
    assert "Verdict: A write would be refused now (locked) (and 1 more)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-id"], "ERROR: The resource ID 'not-an-id' is not valid"),
        ([VM, "--intent", "scale"], "ERROR: --intent: 'scale' is not an intent"),
        ([VNET, "--intent", "resize:Standard_D4s_v5"], "applies to virtual machines"),
        ([VM, "--history", "forever"], "ERROR: --history 'forever' is not a positive duration"),
        ([VM, "--history", "99999999999999d"], "longer than the 90 days the Activity Log keeps"),
        (
            [VM, "--endpoint", "ftp://example"],
            "ERROR: --endpoint 'ftp://example' is not an http(s) URL",
        ),
        ([VM, "--endpoint", "http://127.0.0.1:9"], "ERROR: cannot reach ARM"),
    ],
)
def test_bad_input_exits_2_without_a_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_arm_text_is_printed_as_written_not_as_markup(
    arm: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    eve = ArmClient(StaticIdentityCredential("[bold]eve[/bold]"), endpoint=arm.base_url)
    eve.request("PATCH", VM, api_version="2024-07-01", body={"tags": {"a": "b"}})
    eve.close()
    assert main(["inspect", VM, "--endpoint", arm.base_url]) in (0, 1)  # 1: the PATCH runs
    out = capsys.readouterr().out
    # The recent-writes row names the caller in its own cell, exactly as ARM logged it.
    (row,) = [
        line for line in out.splitlines() if "│ virtualMachines/write" in line and "eve" in line
    ]
    assert "[bold]eve[/bold]" in row.split()
    assert "\\[" not in out


def test_endpoint_and_cloud_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect", VM, "--endpoint", "http://127.0.0.1:9", "--cloud", "AzureCloud"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_installed_command_reports_a_busy_vm(arm: EmulatorHandle) -> None:
    bob = ArmClient(StaticIdentityCredential("bob@contoso.com"), endpoint=arm.base_url)
    bob.request("POST", f"{VM}/deallocate", api_version="2024-07-01")
    bob.close()
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "inspect", VM, "--endpoint", arm.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "operation_in_progress" in proc.stdout
    assert "bob@contoso.com" in proc.stdout
    assert proc.stderr == ""
