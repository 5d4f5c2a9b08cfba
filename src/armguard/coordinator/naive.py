"""A plan's writers on their own, without armguard: the baseline ``armguard apply --compare``
measures armguard against.

Each job's writer does what a script built on the official SDK does: read the resource, fold
its change into what it read, and send it back (``PUT`` the body, or the intent's own request:
``POST .../start``, ``DELETE``), then wait for the long-running operation as the SDK's poller
would. A writer whose job carries the body it read earlier (a queued message) sends that body
instead of reading again; one that carries an ETag sends it as ``If-Match``, as the SDK's
``if_match`` does. Transport behaviour follows azure-core's default ``RetryPolicy``: 408, 429
and 5xx are retried, honouring ``Retry-After``, a few times; 409 and 412 are not retried, and
nothing rebases, waits for a running operation or meets a prerequisite. Every writer runs on
its own thread and all start together, as independent tools do.

Nothing here is simulated: every request goes to ARM (the emulator) and the counts come from
its answers and from the final state read back afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from armguard.arm.client import ArmClient, ArmResponse, ArmTransportError
from armguard.arm.clients import client_factory
from armguard.arm.states import is_terminal
from armguard.coordinator.apply import final_states, lost_effects
from armguard.coordinator.gates import (
    GateFailed,
    GateTimeout,
    Pacer,
    Stopped,
    wait_for_operation,
    wait_for_provisioning,
)
from armguard.coordinator.intents import Request
from armguard.coordinator.plan import Plan, PlannedJob
from armguard.coordinator.resource_types import api_version_for

__all__ = ["RETRY_STATUSES", "NaiveReport", "NaiveResult", "run_naive"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""The statuses azure-core's ``RetryPolicy`` retries by default."""
_BACKOFF_FACTOR = 0.8
"""azure-core's default ``retry_backoff_factor``, used when ARM sends no Retry-After."""


@dataclass(frozen=True)
class NaiveResult:
    """How one writer's job ended."""

    index: int
    writer: str
    resource_id: str
    method: str
    ok: bool
    status: int | None = None
    """The HTTP status of the answer that ended the job (None: no answer or a failed poll)."""
    code: str = ""
    message: str = ""
    landed: int | None = None
    """The order its write took effect in, among all writers; None when it never did."""

    @property
    def error(self) -> str:
        """``409 AnotherOperationInProgress``: what the writer's script was handed."""
        status = "" if self.status is None else f"{self.status} "
        return f"{status}{self.code or 'error'}"


@dataclass
class NaiveReport:
    results: list[NaiveResult] = field(default_factory=list)
    lost: list[PlannedJob] = field(default_factory=list)
    requests: int = 0
    """Requests the writers sent, retries and polls included."""

    @property
    def surfaced(self) -> list[NaiveResult]:
        """Writers that ended with an error: a 409, a 412, or anything else they were handed."""
        return [r for r in self.results if not r.ok]

    def surfaced_by_error(self) -> Counter[str]:
        return Counter(r.error for r in self.surfaced)


class _Counted:
    """A writer's client that counts the requests it sends (shared by a writer's threads)."""

    def __init__(self, client: ArmClient, tally: Callable[[], None]) -> None:
        self._client = client
        self._tally = tally

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ArmResponse:
        self._tally()
        return self._client.request(
            method, path, api_version=api_version, body=body, headers=headers, params=params
        )


class _Failed(Exception):
    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _send(
    arm: _Counted,
    pacer: Pacer,
    retries: int,
    method: str,
    path: str,
    **kwargs: Any,
) -> ArmResponse:
    """One SDK call: the request, retried the way azure-core's default policy retries it."""
    attempt = 0
    while True:
        try:
            response = arm.request(method, path, **kwargs)
        except ArmTransportError as exc:
            if attempt >= retries:
                raise _Failed(None, "ServiceRequestError", str(exc)) from None
            pacer.pause(_BACKOFF_FACTOR * 2**attempt)
            attempt += 1
            continue
        if response.status not in RETRY_STATUSES or attempt >= retries:
            return response
        after = response.retry_after
        pacer.pause(after if after is not None else _BACKOFF_FACTOR * 2**attempt)
        attempt += 1


def _refused(response: ArmResponse) -> _Failed:
    c = response.classification()
    return _Failed(response.status, c.code or "", c.message or "")


def _poll(arm: _Counted, response: ArmResponse, path: str, api: str, pacer: Pacer) -> None:
    """The SDK poller: follow the operation to its end; raise what the SDK would raise."""
    url = response.header("azure-asyncoperation") or response.header("location")
    try:
        if url:
            outcome = wait_for_operation(arm, url, pacer, first=response)
            if not outcome.succeeded:
                error = outcome.error
                raise _Failed(
                    outcome.response.status,
                    (error.code if error else "") or outcome.status,
                    error.message if error else f"the operation ended {outcome.status}",
                )
        elif response.status in (200, 201) and isinstance(response.body, Mapping):
            final = wait_for_provisioning(arm, path, api, pacer, first=response)
            body = final.body if final is not None else None
            props = body.get("properties") if isinstance(body, Mapping) else None
            state = props.get("provisioningState") if isinstance(props, Mapping) else None
            if isinstance(state, str) and state.lower() != "succeeded":
                raise _Failed(final.status if final else None, state, f"provisioning {state}")
    except GateFailed as exc:
        raise _refused(exc.response) from None
    except GateTimeout as exc:
        raise _Failed(None, "PollingTimeout", str(exc)) from None


def _write(
    arm: _Counted,
    planned: PlannedJob,
    pacer: Pacer,
    retries: int,
    landed: Callable[[], int],
) -> NaiveResult:
    rid = planned.resource
    path = str(rid)
    api = api_version_for(rid, planned.intent.api_version)
    method = "GET"
    try:
        base: Mapping[str, Any] | None
        if planned.baseline is not None:
            base = planned.baseline
        else:
            live = _send(arm, pacer, retries, "GET", path, api_version=api)
            if live.status == 404:
                base = None
            elif not live.ok:
                raise _refused(live)
            else:
                base = live.body if isinstance(live.body, Mapping) else None
        change = planned.intent.rebase(base)
        request = change if isinstance(change, Request) else Request("PUT", "", change)
        method = request.method
        headers = {"If-Match": planned.baseline_etag} if planned.baseline_etag else None
        target = path + request.suffix
        response = _send(
            arm, pacer, retries, method, target, api_version=api, body=request.body, headers=headers
        )
        if not response.ok:
            raise _refused(response)
        # Last writer wins from the moment ARM accepts the body, not when the poll ends.
        order = landed()
        _poll(arm, response, path, api, pacer)
    except _Failed as exc:
        return NaiveResult(
            planned.index, planned.writer, path, method, False, exc.status, exc.code, exc.message
        )
    return NaiveResult(
        planned.index, planned.writer, path, method, True, response.status, landed=order
    )


def _settle(arm: _Counted, plan: Plan, versions: Mapping[str, str | None], pacer: Pacer) -> None:
    """Wait until no resource of the plan is still provisioning: an operation another tool
    left running (a deployment) may still overwrite what the writers did."""
    for rid in {p.resource.key: p.resource for p in plan.jobs}.values():
        api = api_version_for(rid, versions.get(rid.key))
        response = arm.request("GET", str(rid), api_version=api)
        body = response.body if isinstance(response.body, Mapping) else {}
        props = body.get("properties")
        state = props.get("provisioningState") if isinstance(props, Mapping) else None
        if response.ok and isinstance(state, str) and not is_terminal(state):
            # If it never settles, the final read shows whatever state it is in.
            with contextlib.suppress(GateFailed, GateTimeout):
                wait_for_provisioning(arm, str(rid), api, pacer, first=response)


def run_naive(
    plan: Plan,
    endpoint: str,
    pacer: Pacer,
    *,
    cloud: str = "AzureCloud",
    retries: int = 3,
) -> NaiveReport:
    """Run every job of ``plan`` as its writer would without armguard, all at once, against
    ``endpoint`` (whose world the caller has built), then read the resources back.

    ``retries`` is how many times a 408/429/5xx is retried (azure-core's default is 10; three
    keep a demo brisk and make no difference where ARM does not throttle). Raises
    :class:`Stopped` when ``pacer`` says to stop.
    """
    client_for = client_factory(endpoint, cloud)
    report = NaiveReport()
    lock = threading.Lock()
    order = itertools.count(1)

    def tally() -> None:
        with lock:
            report.requests += 1

    def landed() -> int:
        with lock:
            return next(order)

    results: dict[int, NaiveResult] = {}
    crashed: list[BaseException] = []
    start = threading.Barrier(len(plan.jobs))

    def writer(planned: PlannedJob) -> None:
        arm = _Counted(client_for(planned.writer), tally)
        try:
            start.wait()
            result = _write(arm, planned, pacer, retries, landed)
        except BaseException as exc:  # re-raised on the caller's thread, never lost here
            with lock:
                crashed.append(exc)
            start.abort()
            return
        with lock:
            results[planned.index] = result

    threads = [
        threading.Thread(target=writer, args=(p,), name=f"naive-{p.index}", daemon=True)
        for p in plan.jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        stopped = next((e for e in crashed if isinstance(e, Stopped)), None)
        raise stopped or next(e for e in crashed if not isinstance(e, threading.BrokenBarrierError))
    report.results = [results[p.index] for p in plan.jobs]
    reader = _Counted(client_for("naive-verify"), lambda: None)
    versions = {p.resource.key: p.intent.api_version for p in plan.jobs if p.intent.api_version}
    _settle(reader, plan, versions, pacer)
    final = final_states(reader, [p.resource for p in plan.jobs], versions)
    took_effect = {r.index: r.landed for r in report.results if r.landed is not None}
    report.lost = lost_effects(plan, took_effect, final)
    return report
