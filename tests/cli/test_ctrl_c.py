"""Ctrl-C (SIGINT) to a busy ``armguard worker`` or ``armguard apply``: the command stops the
way SIGTERM stops a worker — a batch that has not written releases its lease (the job is queued
again), a batch whose write ARM has finishes it — then exits 130 with one ``ERROR:`` line and
no traceback. A second Ctrl-C exits at once; the lease it leaves expires and is taken over."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.clock import SystemClock
from armguard.coordinator.intents import TagsIntent
from armguard.coordinator.model import Job, JobState, Outcome
from armguard.coordinator.sqlite_store import SqliteStore
from armguard.coordinator.submit import submit
from armguard.testing import EmulatorHandle, emulator

ROOT = Path(__file__).resolve().parents[2]
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
NET = "2024-05-01"
BODY = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}
EXIT_INTERRUPTED = 130


class _Cli:
    """An ``armguard`` child process whose stderr is read line by line as it comes, so a test
    can wait for a line with a deadline instead of blocking on a pipe."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armguard.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.err_lines: list[str] = []
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._out: list[str] = []
        assert self.proc.stderr is not None
        assert self.proc.stdout is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._pending.put(line)
        self._pending.put(None)

    def _drain(self, stream: IO[str]) -> None:
        self._out.append(stream.read())

    def expect(self, prefix: str, timeout: float = 60.0) -> str:
        """The next stderr line starting with ``prefix`` (earlier lines are kept, not lost)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no stderr line starting {prefix!r}: {self.err_lines}"
            try:
                line = self._pending.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"exited before {prefix!r}: {self.err_lines}"
            self.err_lines.append(line)
            if line.startswith(prefix):
                return line

    def interrupt(self) -> float:
        self.proc.send_signal(signal.SIGINT)
        return time.monotonic()

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Exit code, stdout and the whole stderr, once it exits within ``timeout``."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.close()
        while True:
            line = self._pending.get_nowait() if not self._pending.empty() else None
            if line is None:
                break
            self.err_lines.append(line)
        return code, "".join(self._out), "".join(self.err_lines)

    def close(self) -> None:
        """Kill it if it still runs (a failed test), and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _assert_interrupted(code: int, err: str) -> None:
    assert code == EXIT_INTERRUPTED, err
    assert "Traceback" not in err, err
    last = err.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("ERROR: interrupted"), err


def _events(store: SqliteStore, job_id: str) -> list[str]:
    return [str(e.event) for e in store.events(job_id)]


def _until_event(store: SqliteStore, job_id: str, wanted: str, timeout: float = 60.0) -> None:
    """Watch the job's timeline (another process writes it) until ``wanted`` appears."""
    deadline = time.monotonic() + timeout
    while wanted not in _events(store, job_id):
        assert time.monotonic() < deadline, _events(store, job_id)
        time.sleep(0.02)


def _only_job(store: SqliteStore, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while not (jobs := store.jobs()):
        assert time.monotonic() < deadline, "apply queued nothing"
        time.sleep(0.02)
    assert len(jobs) == 1
    return jobs[0]


def _settled(store: SqliteStore, job_id: str) -> Job:
    job = store.get(job_id)
    assert job is not None
    # Completed, or released back to the queue: never left running under a dead lease.
    assert job.state is not JobState.RUNNING, _events(store, job_id)
    return job


@contextmanager
def _arm(update_seconds: float) -> Iterator[EmulatorHandle]:
    # Real time: the CLI is another process. Retry-After capped at 1 s, so a waiting batch
    # looks at its stop flag at least once a second.
    settings = {
        "Microsoft.Network/virtualNetworks": {"durations": {"update": update_seconds, "create": 0}}
    }
    with emulator(clock=SystemClock(), type_settings=settings, retry_after_max=1) as handle:
        setup = ArmClient(StaticIdentityCredential("setup"), endpoint=handle.base_url)
        assert setup.request("PUT", RG, api_version="2024-03-01", body={"location": "eastus"}).ok
        assert setup.request("PUT", VNET, api_version=NET, body=BODY).ok
        yield handle


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with _arm(3.0) as handle:
        yield handle


Spawn = Callable[..., _Cli]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts ``armguard`` children; one a failing test left running is killed afterwards."""
    started: list[_Cli] = []

    def start(*args: str) -> _Cli:
        started.append(_Cli(*args))
        return started[-1]

    yield start
    for cli in started:
        cli.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    handle = SqliteStore(str(tmp_path / "jobs.db"), clock=SystemClock())
    yield handle
    handle.close()


def _worker(spawn: Spawn, store_path: Path, arm: EmulatorHandle, *extra: str) -> _Cli:
    cli = spawn(
        "worker",
        "--store",
        str(store_path),
        "--endpoint",
        arm.base_url,
        "--linger",
        "0",
        "--output",
        "json",
        *extra,
    )
    cli.expect("worker ")  # its signal handlers are in place
    return cli


# -- armguard worker --------------------------------------------------------------------------


def test_ctrl_c_to_a_worker_before_the_write_releases_the_job(
    tmp_path: Path, arm: EmulatorHandle, store: SqliteStore, spawn: Spawn
) -> None:
    pipeline = ArmClient(StaticIdentityCredential("pipeline"), endpoint=arm.base_url)
    live = pipeline.request("GET", VNET, api_version=NET).body
    assert pipeline.request("PUT", VNET, api_version=NET, body={**live, "tags": {"r": "1"}}).ok
    job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
    cli = _worker(spawn, tmp_path / "jobs.db", arm)
    _until_event(store, job.id, "waiting")  # gated on the pipeline's running update
    sent = cli.interrupt()
    code, out, err = cli.finish(timeout=30)
    assert time.monotonic() - sent < 10, err
    _assert_interrupted(code, err)
    assert json.loads(out)["released"] == 1
    after = _settled(store, job.id)
    assert after.state is JobState.QUEUED  # back in the queue for the next worker
    assert "released" in _events(store, job.id)


def test_ctrl_c_to_a_worker_after_the_write_finishes_the_batch(
    tmp_path: Path, arm: EmulatorHandle, store: SqliteStore, spawn: Spawn
) -> None:
    job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
    cli = _worker(spawn, tmp_path / "jobs.db", arm)
    _until_event(store, job.id, "write")  # ARM has it; its update runs for 3 s
    sent = cli.interrupt()
    code, out, err = cli.finish(timeout=30)
    assert time.monotonic() - sent < 15, err
    _assert_interrupted(code, err)
    done = _settled(store, job.id)
    assert done.outcome is Outcome.APPLIED, done.reason
    assert json.loads(out)["outcomes"] == {"applied": 1}


def test_a_second_ctrl_c_exits_at_once_and_loses_nothing(
    tmp_path: Path, store: SqliteStore, spawn: Spawn
) -> None:
    with _arm(update_seconds=12.0) as slow:
        job = submit(store, VNET, TagsIntent({"a": "1"}), "alice")
        cli = _worker(spawn, tmp_path / "jobs.db", slow, "--lease-ttl", "3")
        _until_event(store, job.id, "write")  # the batch would now wait 12 s for its update
        cli.interrupt()
        cli.expect("stopping")
        sent = cli.interrupt()
        code, _, err = cli.finish(timeout=15)
        assert time.monotonic() - sent < 5, err
        _assert_interrupted(code, err)
        # The abandoned lease expires and a new worker takes the job over.
        again = _worker(spawn, tmp_path / "jobs.db", slow, "--until-idle")
        code, _, err = again.finish(timeout=90)
        assert code == 0, err
        done = _settled(store, job.id)
        assert done.outcome in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED), done.reason


# -- armguard apply ---------------------------------------------------------------------------


def _plan(tmp_path: Path, world: str, job: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: ctrl-c\nworld:\n  resources:\n"
        f"    - {{id: {RG}, body: {{location: eastus}}}}\n{world}jobs:\n  - {job}\n",
        encoding="utf-8",
    )
    return plan


def _apply(spawn: Spawn, tmp_path: Path, plan: Path, time_scale: float) -> _Cli:
    cli = spawn(
        "apply",
        str(plan),
        "--emulator",
        "--store",
        str(tmp_path / "jobs.db"),
        "--time-scale",
        str(time_scale),
    )
    cli.expect("queued ")
    return cli


def test_ctrl_c_to_apply_releases_a_job_that_has_not_written(
    tmp_path: Path, store: SqliteStore, spawn: Spawn
) -> None:
    # A pipeline's VNet create (10 s at this time scale) is still running when the job comes.
    world = (
        "  unguarded:\n"
        f"    - {{writer: pipeline, method: PUT, id: {VNET}, body: {json.dumps(BODY)}}}\n"
    )
    plan = _plan(tmp_path, world, f"{{writer: alice, resource: {VNET}, tags: {{a: '1'}}}}")
    cli = _apply(spawn, tmp_path, plan, time_scale=2.0)
    job = _only_job(store)
    _until_event(store, job.id, "waiting")
    sent = cli.interrupt()
    code, out, err = cli.finish(timeout=30)
    assert time.monotonic() - sent < 10, err
    _assert_interrupted(code, err)
    assert out == ""  # no accounting of a run that did not end
    after = _settled(store, job.id)
    assert after.state is JobState.QUEUED
    assert "released" in _events(store, job.id)


def test_ctrl_c_to_apply_lets_a_sent_write_finish(
    tmp_path: Path, store: SqliteStore, spawn: Spawn
) -> None:
    # The job creates the VNet: 5 s at time scale 1, once ARM has the write.
    plan = _plan(tmp_path, "", f"{{writer: alice, resource: {VNET}, put: {json.dumps(BODY)}}}")
    cli = _apply(spawn, tmp_path, plan, time_scale=1.0)
    job = _only_job(store)
    _until_event(store, job.id, "write")
    sent = cli.interrupt()
    code, _, err = cli.finish(timeout=30)
    assert time.monotonic() - sent < 15, err
    _assert_interrupted(code, err)
    done = _settled(store, job.id)
    assert done.outcome is Outcome.APPLIED, done.reason
