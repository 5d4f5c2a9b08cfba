"""azure-cli through ``armguard proxy --tls`` in front of ``armguard emulator --tls``, both run
as processes: the cloud is registered at the proxy (its metadata document keeps the
emulator's Entra ID for login), and four ``az network vnet subnet create`` started at once on
one VNet all succeed, where ARM lets one subnet operation run on a VNet at a time.

az is the client nobody here wrote: its pipeline, its long-running-operation polling (through
status URLs the proxy rewrote onto itself) and its error handling are its own.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from az_helpers import Az

pytestmark = pytest.mark.az

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "00000000-0000-0000-0000-000000000001"
VNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-proxy/providers/Microsoft.Network/"
    "virtualNetworks/shared"
)
SUBNETS = ("app", "data", "web", "jobs")


def _serve(args: list[str], pattern: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "armguard.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(pattern, line)
    if match is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
    return proc, match.group(1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return err


@pytest.fixture(scope="module")
def through_proxy(
    az_executable: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Az, Path]]:
    base = tmp_path_factory.mktemp("az-proxy")
    # Subnet operations take ARM's seconds (time scale 1): four of them overlap for sure.
    emulator, emulator_url = _serve(
        ["emulator", "--port", "0", "--time-scale", "1", "--tls", "--cert-dir", str(base / "e")],
        r"^armguard emulator listening on (https://127\.0\.0\.1:\d+)\n$",
    )
    events = base / "proxy-events.jsonl"
    proxy, proxy_url = _serve(
        [
            "proxy",
            "--upstream",
            emulator_url,
            "--upstream-ca",
            str(base / "e" / "ca.pem"),
            "--tls",
            "--cert-dir",
            str(base / "p"),
            "--events",
            str(events),
        ],
        r"^armguard proxy listening on (https://127\.0\.0\.1:\d+) ",
    )
    bundle = base / "ca-bundle.pem"
    bundle.write_text(
        (base / "e" / "ca.pem").read_text() + (base / "p" / "ca.pem").read_text(),
        encoding="utf-8",
    )
    az = Az(az_executable, base / "azure-config", bundle)
    try:
        az.ok("cloud", "register", "-n", "ArmguardProxy", "--endpoint-resource-manager", proxy_url)
        cloud = json.loads(az.ok("cloud", "show", "-n", "ArmguardProxy"))
        assert cloud["endpoints"]["resourceManager"].rstrip("/") == proxy_url
        assert cloud["endpoints"]["activeDirectory"] == emulator_url
        az.ok("cloud", "set", "-n", "ArmguardProxy")
        az.ok("login", "--service-principal", "-u", "pipeline", "-p", "x", "--tenant", TENANT)
        yield az, events
    finally:
        proxy_err = _stop(proxy)
        _stop(emulator)
        assert "Traceback" not in proxy_err, proxy_err


def test_four_subnet_creates_at_once_all_succeed_through_the_proxy(
    through_proxy: tuple[Az, Path],
) -> None:
    az, events = through_proxy
    az.ok("group", "create", "-n", "rg-proxy", "-l", "eastus")
    az.ok(
        "network",
        "vnet",
        "create",
        "-g",
        "rg-proxy",
        "-n",
        "shared",
        "--address-prefixes",
        "10.0.0.0/16",
    )
    started = [
        az.start(
            "network",
            "vnet",
            "subnet",
            "create",
            "-g",
            "rg-proxy",
            "--vnet-name",
            "shared",
            "-n",
            name,
            "--address-prefixes",
            f"10.0.{i}.0/24",
        )
        for i, name in enumerate(SUBNETS, start=1)
    ]
    for name, proc in zip(SUBNETS, started, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"subnet {name}: {err}"
        assert json.loads(out)["provisioningState"] == "Succeeded"
    listed = json.loads(
        az.ok("network", "vnet", "subnet", "list", "-g", "rg-proxy", "--vnet-name", "shared")
    )
    assert sorted(s["name"] for s in listed) == sorted(SUBNETS)
    # The writes really met: some waited for their turn behind another subnet's operation.
    records = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    subnet_turns = [
        r
        for r in records
        if r["event"] == "claimed" and r["resource_id"].startswith(f"{VNET}/subnets/")
    ]
    assert len(subnet_turns) == len(SUBNETS)
    assert any(r["delay"] > 1.0 for r in subnet_turns), subnet_turns
