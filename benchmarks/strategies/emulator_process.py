"""A fresh ``armguard emulator`` subprocess per run: its own interpreter, so its request handling
does not share a GIL with the writers being measured, and no state leaks between runs."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["EmulatorProcess", "served_emulator"]

_READY = "armguard emulator listening on "


class EmulatorProcess:
    def __init__(self, proc: subprocess.Popen[str], base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url

    def state(self) -> dict[str, Any]:
        """The emulator's dump: resources, operations and the whole Activity Log."""
        response = httpx.get(f"{self.base_url}/_armguard/state", timeout=60)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@contextmanager
def served_emulator(
    workdir: Path,
    resources: Sequence[Mapping[str, Any]],
    *,
    time_scale: float,
    seed: int = 0,
    startup_timeout: float = 30.0,
) -> Iterator[EmulatorProcess]:
    config = workdir / "emulator.yaml"
    config.write_text(yaml.safe_dump({"resources": [dict(r) for r in resources]}))
    cmd = [
        sys.executable,
        "-m",
        "armguard.cli.main",
        "emulator",
        "--port",
        "0",
        "--time-scale",
        repr(time_scale),
        "--seed",
        str(seed),
        "--config",
        str(config),
    ]
    stderr_path = workdir / "emulator.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ)
        )
        try:
            line = _first_line(proc, startup_timeout)
            if not line.startswith(_READY):
                proc.kill()
                proc.wait()
                # The last stderr line names the cause (the error of a traceback, a CLI ERROR).
                tail = [t for t in stderr_path.read_text().splitlines() if t.strip()][-1:]
                raise RuntimeError(
                    f"the emulator did not start: {line.strip() or 'no output'};"
                    f" stderr: {tail[0].strip() if tail else '(empty)'}"
                )
            yield EmulatorProcess(proc, line[len(_READY) :].strip())
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
