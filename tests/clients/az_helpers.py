"""``az`` run in its own config directory, and the emulator process it talks to."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EmulatorProcess:
    url: str
    ca_file: Path


@dataclass
class AzResult:
    returncode: int
    stdout: str
    stderr: str


class Az:
    """``az`` with its own config directory, trusting the emulator's certificate."""

    def __init__(self, executable: Path, config_dir: Path, ca_file: Path) -> None:
        self.executable = executable
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update(
            {
                "AZURE_CONFIG_DIR": str(config_dir),
                "REQUESTS_CA_BUNDLE": str(ca_file),
                # MSAL would ask login.microsoftonline.com whether the emulator is a
                # known authority; the emulator is its own.
                "AZURE_CORE_INSTANCE_DISCOVERY": "false",
                "AZURE_CORE_COLLECT_TELEMETRY": "false",
                "AZURE_CORE_SURVEY_MESSAGE": "false",
                "AZURE_CORE_OUTPUT": "json",
                "AZURE_CORE_NO_COLOR": "true",
                "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
            }
        )

    def __call__(self, *args: str) -> AzResult:
        done = subprocess.run(
            [str(self.executable), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return AzResult(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``az`` in the background, for commands that wait on something the test does."""
        return subprocess.Popen(
            [str(self.executable), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"az {' '.join(args)}: {result.stderr}"
        return result.stdout
