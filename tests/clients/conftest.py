"""Real clients nobody here wrote, against ``armguard emulator --tls`` run as a process.

azure-cli lives in its own virtualenv, ``.venv-az/`` at the repository root (ignored by git):
its hundreds of pinned packages would clash with the test environment's SDKs. The first run
creates it (two to three minutes here and 700 MB); later runs reuse it. Without a package index the
tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from az_helpers import Az, EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
AZ_VENV = ROOT / ".venv-az"
AZURE_CLI = "azure-cli==2.91.0"
_LINE = re.compile(r"^armguard emulator listening on (https://127\.0\.0\.1:\d+)\n$")


def _az_executable() -> Path:
    az = AZ_VENV / "bin" / "az"
    stamp = AZ_VENV / f".installed-{AZURE_CLI}"
    if stamp.exists() and az.exists():
        return az
    try:
        if not (AZ_VENV / "bin" / "python").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(AZ_VENV)],
                check=True,
                capture_output=True,
                text=True,
            )
        subprocess.run(
            [str(AZ_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", AZURE_CLI],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        output = getattr(err, "stderr", "") or ""
        message = f"cannot install {AZURE_CLI} into {AZ_VENV}: {err}\n{str(output)[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stamp.touch()
    return az


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    certs = tmp_path_factory.mktemp("certs")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armguard.cli.main",
            "emulator",
            "--port",
            "0",
            "--time-scale",
            "0",
            "--tls",
            "--cert-dir",
            str(certs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = _LINE.match(line)
    if match is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
    try:
        yield EmulatorProcess(match.group(1), certs / "ca.pem")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.fixture(scope="session")
def az_executable() -> Path:
    return _az_executable()


@pytest.fixture(scope="module")
def az(tls_emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Az:
    return Az(_az_executable(), tmp_path_factory.mktemp("azure-config"), tls_emulator.ca_file)
