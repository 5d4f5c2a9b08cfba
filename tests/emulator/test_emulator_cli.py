"""``armguard emulator`` as a process: one line on stdout, serves, stops cleanly on signals."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from armguard.testing import make_token

AUTH = {"Authorization": f"Bearer {make_token('cli@example.com')}"}
LINE = re.compile(r"^armguard emulator listening on (https?)://127\.0\.0\.1:(\d+)\n$")


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "armguard.cli.main", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = LINE.match(line)
    if match is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
    return proc, f"{match.group(1)}://127.0.0.1:{match.group(2)}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_signalled_and_exits_zero(sig: signal.Signals, tmp_path: Path) -> None:
    config = tmp_path / "seed.yaml"
    config.write_text(
        "timeScale: 0\n"
        "resources:\n"
        "  - id: /subscriptions/s/resourceGroups/rg\n"
        "    body: {location: eastus}\n"
    )
    proc, url = start("--config", str(config), "--seed", "3")
    try:
        response = httpx.get(
            f"{url}/subscriptions/s/resourceGroups/rg?api-version=2024-03-01", headers=AUTH
        )
        assert response.status_code == 200
        assert response.json()["properties"]["provisioningState"] == "Succeeded"
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == "", "exactly one line on stdout"


def test_tls_serves_https_with_its_own_ca(tmp_path: Path) -> None:
    proc, url = start("--tls", "--cert-dir", str(tmp_path), "--time-scale", "0")
    try:
        assert url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        response = httpx.get(f"{url}/_armguard/health", verify=trust)
        assert response.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-scale", "-1"], "--time-scale must be >= 0"),
        (["--tls"], "--tls needs --cert-dir"),
        (["--config", "/nonexistent/armguard.yaml"], "cannot read config file"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_bad_input_is_a_cli_error(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ERROR: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_config_content_is_a_cli_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("types:\n  Microsoft.Network/*: {conflict: sometimes}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "emulator", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "conflict must be one of" in proc.stderr
