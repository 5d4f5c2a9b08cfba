"""The processes a chaos run starts, by PID: started here, signalled here, ended here.

Nothing is ever signalled by name: a run ends exactly the processes it started, whatever
else runs on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Proc", "Procs", "python_child"]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Procs:
    """Every process of one run; :meth:`close` ends those still running."""

    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def armguard(self, name: str, *args: str) -> Proc:
        """Start ``armguard ARGS`` with this interpreter; output goes to ``log_dir/name.log``."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "armguard.cli.main", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        proc = Proc(name, popen)
        self.procs.append(proc)
        return proc

    def kill9(self, proc: Proc) -> None:
        self._signal(proc, signal.SIGKILL)
        proc.popen.wait()

    def pause(self, proc: Proc) -> None:
        self._signal(proc, signal.SIGSTOP)
        proc.stopped = True

    def resume(self, proc: Proc) -> None:
        self._signal(proc, signal.SIGCONT)
        proc.stopped = False

    def _signal(self, proc: Proc, sig: signal.Signals) -> None:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def stop(self, proc: Proc, timeout: float = 20.0) -> int | None:
        """SIGTERM (after SIGCONT, so a paused one can hear it); SIGKILL if it will not go."""
        if proc.stopped:
            self.resume(proc)
        self._signal(proc, signal.SIGTERM)
        try:
            return proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9(proc)
            return proc.popen.returncode

    def wait_all(self, procs: list[Proc], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for proc in procs:
            left = deadline - time.monotonic()
            try:
                proc.popen.wait(max(0.0, left))
            except subprocess.TimeoutExpired:
                return False
        return True

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                self.stop(proc, timeout=10.0)


def python_child(procs: Procs, name: str, code: str, *args: str) -> Proc:
    """Start ``python -c CODE ARGS`` (a stand-in writer a nemesis kills)."""
    log = open(procs.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        popen = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()
    proc = Proc(name, popen)
    procs.procs.append(proc)
    return proc
