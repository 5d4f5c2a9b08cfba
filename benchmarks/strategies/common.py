"""What every strategy shares: the run context, per-intent outcomes, and the calls user code
makes to ARM (read, conditional or unconditional PUT, wait for the operation like the SDKs'
``poller.result()``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.client import ArmClient, ArmResponse, ArmTransportError, StaticIdentityCredential
from armguard.coordinator.gates import GateFailed, GateTimeout, Pacer, Stopped, wait_for_operation
from armguard.coordinator.intents import strip_read_only

from .scaled_clock import ScaledClock
from .workloads import WorkIntent

__all__ = [
    "CONFLICT_STATUSES",
    "Clients",
    "IntentOutcome",
    "RunContext",
    "StrategyResult",
    "Tally",
    "failed",
    "finish_write",
    "read",
    "run_writers",
    "send_put",
]

CONFLICT_STATUSES = frozenset({409, 412})


@dataclass(frozen=True)
class IntentOutcome:
    intent: WorkIntent
    ok: bool
    """The strategy told its caller the intent succeeded."""
    status: int | None = None
    """HTTP status of the failure that ended it (None: ok, or not an HTTP failure)."""
    code: str | None = None
    kind: str | None = None
    attempts: int = 1

    @property
    def conflict_surfaced(self) -> bool:
        return not self.ok and self.status in CONFLICT_STATUSES


@dataclass
class Tally:
    """Client-side counters, shared by a run's writer threads."""

    write_statuses: dict[int, int] = field(default_factory=dict)
    sleeps: int = 0
    slept_s: float = 0.0
    polls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(self, status: int) -> None:
        with self._lock:
            self.write_statuses[status] = self.write_statuses.get(status, 0) + 1

    def slept(self, seconds: float) -> None:
        with self._lock:
            self.sleeps += 1
            self.slept_s += seconds

    def polled(self, n: int) -> None:
        with self._lock:
            self.polls += n


class Clients:
    """One ARM client per writer identity, so the Activity Log names who wrote."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._clients: dict[str, ArmClient] = {}
        self._lock = threading.Lock()

    def __call__(self, writer: str) -> ArmClient:
        with self._lock:
            client = self._clients.get(writer)
            if client is None:
                client = self._clients[writer] = ArmClient(
                    StaticIdentityCredential(writer), endpoint=self.base_url, timeout=120
                )
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


@dataclass
class RunContext:
    clients: Clients
    clock: ScaledClock
    tally: Tally
    options: Mapping[str, Any]
    deadline: float
    """time.monotonic() after which writers give up (the run's bound)."""

    def pacer(self) -> Pacer:
        def keep_alive() -> None:
            return None

        def should_stop() -> bool:
            return time.monotonic() > self.deadline

        return Pacer(self.clock, keep_alive, should_stop, slice=10.0, poll_interval=30.0)

    def sleep(self, seconds: float) -> None:
        self.tally.slept(seconds)
        self.clock.sleep(seconds)


@dataclass
class StrategyResult:
    outcomes: list[IntentOutcome]
    seconds: float
    """Wall time from the first intent issued to the last one ended."""
    details: dict[str, Any] = field(default_factory=dict)


def read(ctx: RunContext, intent: WorkIntent) -> ArmResponse:
    return ctx.clients(intent.writer).request(
        "GET", intent.resource_id, api_version=intent.api_version
    )


def send_put(
    ctx: RunContext, intent: WorkIntent, body: Mapping[str, Any], if_match: str | None
) -> ArmResponse:
    headers = {"If-Match": if_match} if if_match else None
    response = ctx.clients(intent.writer).request(
        "PUT",
        intent.resource_id,
        api_version=intent.api_version,
        body=strip_read_only(body),
        headers=headers,
    )
    ctx.tally.write(response.status)
    return response


def failed(intent: WorkIntent, response: ArmResponse, attempts: int) -> IntentOutcome:
    classification = response.classification()
    return IntentOutcome(
        intent,
        False,
        response.status,
        response.error().code or None,
        str(classification.kind),
        attempts,
    )


def finish_write(
    ctx: RunContext, intent: WorkIntent, response: ArmResponse, attempts: int
) -> IntentOutcome:
    """Wait for an accepted PUT's operation to end, as ``poller.result()`` does."""
    url = response.header("azure-asyncoperation") or response.header("location")
    if url is None:
        return IntentOutcome(intent, True, attempts=attempts)
    try:
        outcome = wait_for_operation(ctx.clients(intent.writer), url, ctx.pacer(), first=response)
    except GateFailed as err:
        return failed(intent, err.response, attempts)
    except (GateTimeout, Stopped):
        return IntentOutcome(intent, False, None, "OperationWaitTimedOut", "timeout", attempts)
    ctx.tally.polled(outcome.polls)
    if outcome.succeeded:
        return IntentOutcome(intent, True, attempts=attempts)
    error = outcome.error
    return IntentOutcome(
        intent, False, None, error.code if error else outcome.status, "operation_failed", attempts
    )


def run_writers(
    writers: Sequence[Sequence[WorkIntent]],
    one: Callable[[WorkIntent], IntentOutcome],
) -> tuple[list[IntentOutcome], float]:
    """One thread per writer, started together; each runs its intents in order."""
    results: list[list[IntentOutcome]] = [[] for _ in writers]
    crashes: list[BaseException] = []
    gate = threading.Barrier(len(writers) + 1)

    def body(n: int) -> None:
        gate.wait()
        for intent in writers[n]:
            try:
                results[n].append(one(intent))
            except ArmTransportError:
                # No answer at all is what a user's script would see too: the intent failed.
                results[n].append(IntentOutcome(intent, False, None, "Transport", "transient"))
            except BaseException as err:  # a harness bug: stop this run, report it
                crashes.append(err)
                return

    threads = [threading.Thread(target=body, args=(n,), daemon=True) for n in range(len(writers))]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if crashes:
        raise crashes[0]
    return [o for r in results for o in r], time.perf_counter() - start
