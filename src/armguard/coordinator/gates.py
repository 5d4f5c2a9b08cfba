"""State gates: wait on what ARM reports, never for a fixed time.

A gate polls one observable thing — an operation's status monitor (``Azure-AsyncOperation``),
its ``Location`` URL, a resource's ``provisioningState`` or a VM's power state — until it is
terminal, honouring ``Retry-After`` between polls (at least one second: ``Retry-After: 0`` is
real but polling in a tight loop earns throttling). Every pause goes through a :class:`Pacer`,
which sleeps on the injected clock, keeps the lease alive and stops when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from armguard.arm.client import ArmResponse
from armguard.arm.errors import ErrorDetail, parse_error_body
from armguard.arm.states import is_terminal
from armguard.clock import Clock
from armguard.coordinator.intents import live_power_state

__all__ = [
    "GateFailed",
    "GateTimeout",
    "OperationOutcome",
    "Pacer",
    "Requester",
    "Stopped",
    "read_instance_view",
    "wait_for_operation",
    "wait_for_power_state",
    "wait_for_provisioning",
    "wait_for_settled_power",
]

# Power states a VM passes through: an action refused in one of them may be allowed (or
# already done) once the VM arrives.
TRANSITIONAL_POWER = frozenset({"starting", "stopping", "deallocating"})


class Requester(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ArmResponse: ...


class Stopped(Exception):
    """The worker was asked to stop while waiting; the batch should be released."""


class GateTimeout(Exception):
    """The awaited state did not arrive within the gate's limit."""


class GateFailed(Exception):
    """ARM could not report the state (the poll itself failed): carries that response."""

    def __init__(self, response: ArmResponse) -> None:
        super().__init__(f"{response.method} {response.url} answered {response.status}")
        self.response = response


@dataclass
class Pacer:
    """Sleeps on the clock in slices short enough to keep the lease alive.

    ``keep_alive`` heartbeats the lease (and raises ``LeaseLost`` when it is gone);
    ``should_stop`` turns a pending wait into :class:`Stopped`.
    """

    clock: Clock
    keep_alive: Callable[[], None]
    should_stop: Callable[[], bool]
    slice: float = 10.0
    poll_interval: float = 10.0
    """Used when ARM gives no Retry-After (ARM's own default is 60 s; the SDKs use 30 s)."""
    max_wait: float = 3600.0

    def pause(self, seconds: float) -> None:
        remaining = max(0.0, seconds)
        while True:
            self.keep_alive()
            if self.should_stop():
                raise Stopped()
            if remaining <= 0:
                return
            step = min(remaining, self.slice)
            self.clock.sleep(step)
            remaining -= step

    def poll_delay(self, response: ArmResponse | None, polls: int = 0) -> float:
        """ARM's Retry-After (at least 1 s) or, without one, 1 s doubling up to the interval:
        most operations end in seconds, and the long ones should not be polled every second."""
        after = response.retry_after if response is not None else None
        if after is None:
            return min(self.poll_interval, float(2 ** min(polls, 16)))
        return max(1.0, after)

    def deadline(self) -> float:
        return self.clock.monotonic() + self.max_wait


@dataclass(frozen=True)
class OperationOutcome:
    status: str
    """``Succeeded``, ``Failed`` or ``Canceled``."""
    error: ErrorDetail | None
    response: ArmResponse
    polls: int

    @property
    def succeeded(self) -> bool:
        return self.status.lower() == "succeeded"


def _status_of(response: ArmResponse) -> str | None:
    """The operation's status from one poll, or None while it still runs."""
    body = response.body
    if isinstance(body, Mapping) and isinstance(body.get("status"), str):
        status = str(body["status"])
        return status if is_terminal(status) else None
    if response.status == 202:
        return None
    if isinstance(body, Mapping):
        props = body.get("properties")
        state = props.get("provisioningState") if isinstance(props, Mapping) else None
        if isinstance(state, str) and not is_terminal(state):
            return None
        if isinstance(state, str):
            return state
    return "Succeeded"


def wait_for_operation(
    arm: Requester, url: str, pacer: Pacer, first: ArmResponse | None = None
) -> OperationOutcome:
    """Follow a status monitor or Location URL until terminal.

    A status monitor answers 200 with ``status``; a Location URL answers 202 while running and
    then the final result. A 4xx/5xx poll means "could not read the status", not "failed", so it
    raises :class:`GateFailed` for the caller to classify.
    """
    deadline = pacer.deadline()
    previous = first
    polls = 0
    while True:
        if previous is not None:
            pacer.pause(pacer.poll_delay(previous, polls))
        if pacer.clock.monotonic() > deadline:
            raise GateTimeout(f"operation {url} still running after {pacer.max_wait:.0f} s")
        response = arm.request("GET", url)
        polls += 1
        if not response.ok:
            raise GateFailed(response)
        status = _status_of(response)
        if status is not None:
            error = None
            if status.lower() != "succeeded":
                error = parse_error_body(response.status, response.body)
                if not error.code and not error.message:
                    error = ErrorDetail(status, f"The operation ended {status}.")
            return OperationOutcome(status, error, response, polls)
        previous = response


def wait_for_provisioning(
    arm: Requester, path: str, api_version: str, pacer: Pacer, first: ArmResponse | None = None
) -> ArmResponse | None:
    """GET the resource until its provisioningState is terminal; None if it is (or becomes) absent."""
    deadline = pacer.deadline()
    previous = first
    polls = 0
    while True:
        if previous is not None:
            pacer.pause(pacer.poll_delay(previous, polls))
            polls += 1
        if pacer.clock.monotonic() > deadline:
            raise GateTimeout(f"{path} still provisioning after {pacer.max_wait:.0f} s")
        response = arm.request("GET", path, api_version=api_version)
        if response.status == 404:
            return None
        if not response.ok:
            raise GateFailed(response)
        body = response.body if isinstance(response.body, Mapping) else {}
        props = body.get("properties")
        state = props.get("provisioningState") if isinstance(props, Mapping) else None
        if is_terminal(state if isinstance(state, str) else None):
            return response
        previous = response


def read_instance_view(arm: Requester, path: str, api_version: str) -> ArmResponse:
    """A VM's instance view (power state); falls back to ``$expand`` where the sub-path is absent."""
    response = arm.request("GET", f"{path}/instanceView", api_version=api_version)
    if response.status in (404, 405) and not _is_missing_resource(response):
        response = arm.request(
            "GET", path, api_version=api_version, params={"$expand": "instanceView"}
        )
        if response.ok and isinstance(response.body, Mapping):
            view = (response.body.get("properties") or {}).get("instanceView") or {}
            return ArmResponse(
                response.method, response.url, response.status, response.headers, view
            )
    return response


def _is_missing_resource(response: ArmResponse) -> bool:
    code = response.error().code.lower()
    return code in ("resourcenotfound", "resourcegroupnotfound", "notfound")


def wait_for_power_state(
    arm: Requester, path: str, api_version: str, wanted: str, pacer: Pacer
) -> str:
    """Poll the instance view until ``PowerState/{wanted}``; returns the state seen."""
    state = _poll_power(
        arm, path, api_version, pacer, done=lambda s: s == wanted.lower(), late=f"not {wanted}"
    )
    assert state is not None
    return state


def wait_for_settled_power(arm: Requester, path: str, api_version: str, pacer: Pacer) -> str | None:
    """Poll the instance view until the power state is not a transition (starting, stopping,
    deallocating); returns it (None: the view shows none)."""
    return _poll_power(
        arm,
        path,
        api_version,
        pacer,
        done=lambda s: s not in TRANSITIONAL_POWER,
        late="still changing power state",
    )


def _poll_power(
    arm: Requester,
    path: str,
    api_version: str,
    pacer: Pacer,
    *,
    done: Callable[[str | None], bool],
    late: str,
) -> str | None:
    deadline = pacer.deadline()
    previous: ArmResponse | None = None
    polls = 0
    while True:
        if previous is not None:
            pacer.pause(pacer.poll_delay(previous, polls))
            polls += 1
        if pacer.clock.monotonic() > deadline:
            raise GateTimeout(f"{path} {late} after {pacer.max_wait:.0f} s")
        response = read_instance_view(arm, path, api_version)
        if not response.ok:
            raise GateFailed(response)
        state = live_power_state({"properties": {"instanceView": response.body}})
        if done(state):
            return state
        previous = response
