from __future__ import annotations

import importlib
import subprocess
import sys

from armguard.cli.main import COMMANDS


def test_every_command_module_exists_and_registers() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"armguard.cli.cmd_{name}")
        assert callable(module.register), name


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in COMMANDS:
        assert name in out


def test_no_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "armguard.cli.main", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_timestamps_keep_four_digit_years() -> None:
    from armguard.clock import isoformat

    assert isoformat(-62135596800.0) == "0001-01-01T00:00:00.0000000Z"
