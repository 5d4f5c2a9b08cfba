"""What the coordinator commands share: ``--store``, ``--endpoint``/``--cloud``, credentials,
how jobs print, and stopping on a signal. Errors the user can fix become :class:`CliError`
(``ERROR: …``, exit 2)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NoReturn

from armguard.arm.client import CLOUDS, ArmClient
from armguard.arm.clients import client_factory as arm_clients
from armguard.arm.clients import is_local_endpoint
from armguard.cli.output import EXIT_INTERRUPTED, CliError, clip
from armguard.clock import Clock, isoformat
from armguard.coordinator.model import Job, Outcome
from armguard.coordinator.reachability import ReachabilityChange
from armguard.coordinator.store import Store
from armguard.coordinator.stores import open_store, redact

__all__ = [
    "GracefulStop",
    "add_endpoint_arguments",
    "add_store_argument",
    "arm_error",
    "client_factory",
    "is_local_endpoint",
    "job_row",
    "job_to_json",
    "open_store_arg",
    "sqlite_path",
]


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("ARMGUARD_STORE"),
        metavar="URL",
        help="job store: an SQLite file path or a postgresql:// URL (env ARMGUARD_STORE)",
    )


def open_store_arg(url: str | None, clock: Clock | None = None, *, create: bool = False) -> Store:
    """Open ``--store``. Only commands that put jobs in a store (``create``: submit, worker,
    apply) may bring a new SQLite file into being: a reading command pointed at a mistyped
    path would otherwise create an empty database and report "0 jobs" as if that were true."""
    if not url:
        raise CliError("--store is required: an SQLite file path or a postgresql:// URL")
    if not create:
        path = sqlite_path(url)
        if path is not None and not Path(path).exists():
            raise CliError(
                f"no store at {url} (no such SQLite file; 'armguard submit', 'armguard worker' "
                "and 'armguard apply' create one)"
            )
    try:
        return open_store(url, clock=clock)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        # Connection failures: say which store (password redacted), not a traceback.
        raise CliError(f"cannot open the store {redact(url)}: {exc}", 1) from None


def sqlite_path(url: str) -> str | None:
    """The file an SQLite store URL names, or None for any other kind of store (PostgreSQL,
    an unsupported scheme, which ``open_store`` reports itself)."""
    text = url.strip()
    if text.lower().startswith("sqlite:///"):
        return text[len("sqlite:///") :] or None
    if "://" in text or text == ":memory:" or text.startswith("file:"):
        return None
    return text


def add_arm_outage_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arm-outage",
        type=float,
        default=60.0,
        metavar="S",
        help="how long ARM may give no answer at all (connection refused, DNS, TLS, timeouts) "
        "before the jobs that need it fail instead of waiting (default: 60)",
    )


def arm_reporter(endpoint: str, say: Callable[[str], None]) -> Callable[[ReachabilityChange], None]:
    """Lines for a worker's ``on_arm``: ARM going silent, the give-up, and its return."""

    def report(change: ReachabilityChange) -> None:
        why = change.why.splitlines()[0][:300] if change.why else "no answer"
        if change.state == "silent":
            say(
                f"WARNING: ARM at {endpoint} gives no answer ({why}); retrying with backoff for "
                f"up to {change.limit:.0f} s (--arm-outage)"
            )
        elif change.state == "gave_up":
            say(
                f"WARNING: ARM at {endpoint} gave no answer for {change.silent_for:.0f} s; jobs "
                "that need it now fail (transient) until it answers again"
            )
        else:
            say(f"ARM at {endpoint} answers again after {change.silent_for:.0f} s of silence")

    return report


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="ARM endpoint; http://127.0.0.1:PORT for the emulator (default: the cloud's)",
    )
    parser.add_argument(
        "--cloud",
        choices=sorted(CLOUDS),
        default="AzureCloud",
        help="Azure cloud whose management endpoint and token scope to use",
    )


def client_factory(endpoint: str | None, cloud: str) -> Callable[[str], ArmClient]:
    try:
        return arm_clients(endpoint, cloud)
    except ValueError as exc:
        raise CliError(str(exc).replace("the endpoint must be", "--endpoint must be")) from None


def arm_error(store: Store, job: Job) -> dict[str, Any] | None:
    """ARM's own words for a failed or blocked job, whole: the last error its events recorded.

    The job's ``reason`` quotes ARM's message cut short (the write loop stores a bounded
    string), which can end mid-way through the locked scope's ID; JSON readers get the full
    error here instead."""
    if job.outcome not in (Outcome.FAILED, Outcome.BLOCKED):
        return None
    for event in reversed(store.events(job.id)):
        if event.code and event.message:
            return {"status": event.status, "code": event.code, "message": event.message}
    return None


def job_to_json(job: Job, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A job for ``--output json``: nothing shortened. ``error`` (from :func:`arm_error`) is
    added as ``armError`` by the commands that looked it up."""
    spec = job.spec
    doc = {
        "id": job.id,
        "seq": job.seq,
        "resourceId": spec.resource_id,
        "writer": spec.writer,
        "intent": dict(spec.intent),
        "state": str(job.state),
        "outcome": str(job.outcome) if job.outcome else None,
        "kind": job.kind,
        "reason": job.reason,
        "attempts": job.attempts,
        "baselineEtag": spec.baseline_etag,
        "onStale": str(spec.on_stale),
        "idempotencyKey": spec.idempotency_key,
        "lockKeys": list(spec.lock_keys),
        "barrier": spec.barrier,
        "createdAt": isoformat(job.created_at),
        "updatedAt": isoformat(job.updated_at),
        "result": dict(job.result),
    }
    if error is not None:
        doc["armError"] = dict(error)
    return doc


def job_row(job: Job) -> dict[str, Any]:
    return {
        "Id": job.id,
        "Seq": job.seq,
        "Resource": job.spec.resource_id.rsplit("/", 1)[-1],
        "Intent": job.spec.intent.get("kind"),
        "Writer": job.spec.writer,
        "State": str(job.state),
        "Outcome": str(job.outcome) if job.outcome else "",
        "Kind": job.kind or "",
        "Reason": clip(job.reason or "", 100),
    }


class GracefulStop:
    """SIGINT (Ctrl-C) and SIGTERM as a request to stop cleanly, for commands that run a worker.

    The first signal calls every stop registered with :meth:`on_stop` (``Worker.stop``: a batch
    whose write ARM has finishes, one that has not written releases its lease) and the command
    winds down on its own. A second Ctrl-C exits at once: the leases still held then expire
    and are taken over, exactly as after a kill, so nothing is lost either way.

    Handlers are installed explicitly, even over an inherited ignore (a background job of a
    non-interactive shell): a worker must never be stoppable only by a kill.
    """

    def __init__(self, announce: Callable[[str], None]) -> None:
        self.received: int | None = None
        self._announce = announce
        self._stops: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @property
    def stopping(self) -> bool:
        return self.received is not None

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C (SIGINT), which exits 130; SIGTERM is a service's normal stop."""
        return self.received == signal.SIGINT

    def exit_code(self) -> int:
        """What a shell reports for the signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + self.received if self.received is not None else EXIT_INTERRUPTED

    def reason(self) -> str:
        return "terminated" if self.received == signal.SIGTERM else "interrupted"

    def on_stop(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` on the first signal; at once if that signal has already come (a
        worker stopped before it starts stays stopped)."""
        self._stops.append(stop)
        if self.stopping:
            stop()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between bytecodes, while it waits in a join or a sleep:
        # it only flags and wakes; the worker's threads see the flag and wind down.
        if self.stopping:
            if signum == signal.SIGINT:
                self._exit_now()
            return
        self.received = signum
        for stop in self._stops:
            stop()
        # The signal may have cut into a write to the same stream, which then refuses this
        # one (a reentrant call): losing the line beats raising into the interrupted code.
        with suppress(Exception):
            self._announce(
                "stopping: finishing or releasing current batches…"
                + (" (Ctrl-C again to exit at once)" if signum == signal.SIGINT else "")
            )

    @staticmethod
    def _exit_now() -> NoReturn:
        with suppress(Exception):
            if sys.stderr.isatty():
                sys.stderr.write("\x1b[?25h")  # a live progress display hid the cursor
            sys.stderr.write(
                "ERROR: interrupted again: exiting without waiting; leases still held expire "
                "and their jobs are taken over\n"
            )
            sys.stderr.flush()
        # Not sys.exit: the interpreter would wait on, and tear down under, threads that are
        # mid-call to ARM and the store. An exit here is what a kill does, which is safe.
        os._exit(EXIT_INTERRUPTED)
