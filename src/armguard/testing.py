"""Test helpers for code that talks to ARM: a served emulator, SDK clients bound to it.

Stable API (used by the coordinator and diagnostics test suites)::

    from armguard.testing import ManualClock, emulator, sdk_client

    with emulator(clock=ManualClock(), time_scale=1.0, seed=0) as arm:
        arm.base_url            # "http://127.0.0.1:PORT"
        arm.core                # the Emulator (no HTTP): arm.core.dump(), arm.core.faults
        arm.clock               # the clock the emulator runs on (advance a ManualClock)
        client = arm.client(ResourceManagementClient, caller="alice@example.com")

``emulator(...)`` keywords: ``clock`` (default: a new ManualClock), ``time_scale`` (default 1.0;
0 ends every operation at once), ``seed`` (ETag / id RNG), ``type_settings`` (per-type setting
overrides, as in the ``types:`` section of ``--config``), ``tls_dir`` (serve https with a
throw-away CA written there; ``arm.ca_file`` is then set), ``retry_after_max`` (cap on the
Retry-After sent), ``auto_advance`` (see below). ``emulator_fixture(**kw)`` turns the same
keywords into a pytest fixture. ``sdk_client(cls, base_url, ...)`` builds any ``azure-mgmt-*``
client against any emulator URL, unmodified except base URL, credential, ``enforce_https`` and,
given ``waits``, its transport.

Time: with a ManualClock, clients from ``arm.client`` get a :class:`ClockTransport`. azure-core
sends every SDK wait through ``transport.sleep`` (RetryPolicy's Retry-After and backoff, the LRO
poller's Retry-After or ``polling_interval``), and this transport spends it on the emulator's
clock instead of real time. By default each wait advances the clock by its own length at once;
``auto_advance=True`` parks waits and moves the clock to the earliest one whenever no SDK request
is in flight, so concurrent callers share one timeline (see :class:`SdkWaits`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport

from armguard.clock import Clock, ManualClock
from armguard.emulator.core import Emulator
from armguard.emulator.server import serve

__all__ = [
    "DEFAULT_SUBSCRIPTION",
    "AllowHttp",
    "ClockTransport",
    "EmulatorHandle",
    "ManualClock",
    "SdkWaits",
    "StaticCredential",
    "emulator",
    "emulator_fixture",
    "fail_with",
    "make_token",
    "sdk_client",
    "slow",
    "stuck",
    "throttle",
]

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
T = TypeVar("T")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(caller: str, **claims: Any) -> str:
    """An unsigned JWT whose ``upn`` is ``caller``; the emulator names the caller from it."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"upn": caller, **claims}).encode())
    return f"{header}.{payload}.sig"


class StaticCredential:
    """A credential whose token is a JWT naming ``caller`` (never validated by the emulator)."""

    def __init__(self, caller: str = "user@example.com", **claims: Any) -> None:
        self.token = make_token(caller, **claims)

    # Expiry is on the real clock: the SDK's token cache compares it with time.time().
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> Any:
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


class AllowHttp(SansIOHTTPPolicy[Any, Any]):
    """Per-call policy: lets bearer authentication run over plain http (the SDK refuses it)."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False


# Real seconds of quiet (no SDK request of this emulator in flight, no wait starting or ending)
# before the earliest parked wait moves the clock. Driven (the default): far longer than the gaps
# between a test's own calls, so an operation the test watches does not end under it, yet short
# enough that a synchronous retry or poller.result() never hangs on a clock nobody advances.
# Auto-advance: long enough for a poller thread to get from one response to its next wait, short
# enough that a hundred polls stay under a second.
DRIVEN_SETTLE = 0.1
AUTO_ADVANCE_SETTLE = 0.005
# Driven, the quiet is two windows in a row, and a window the waiting thread overslept by half
# again does not count: the whole process was paused (a full garbage collection, the scheduler
# running others), so the test thread had no chance to make its next call either. Without this
# a pause between a test's ``get`` and its ``advance`` let the clock move by itself.
DRIVEN_WINDOWS = 2
STALL_FACTOR = 1.5


class SdkWaits:
    """Where the SDK's waits go for one emulator: onto its ManualClock, never real time.

    A wait parks until the clock reaches its deadline: when the test advances the clock past it,
    or when no request sent through a :class:`ClockTransport` of this emulator is in flight and
    nothing has changed for ``settle`` real seconds, in which case the earliest parked wait
    moves the clock to its own deadline. Concurrent waits therefore overlap as they would in
    real time (two 10-minute operations polled together end after 10 emulated minutes, not 20),
    and a request in flight is never overtaken by another caller's wait.

    ``auto_advance=False`` (the test drives the clock): ``settle`` is :data:`DRIVEN_SETTLE`, so
    the clock moves by itself only when the SDK has been idle-waiting for that long, and a pause
    of the whole process (a garbage collection, the scheduler) does not count as quiet.
    ``auto_advance=True``: ``settle`` is :data:`AUTO_ADVANCE_SETTLE`, for tests that never
    advance the clock themselves. ``waits`` lists every wait the SDK asked for, in seconds.
    """

    def __init__(
        self, clock: ManualClock, *, auto_advance: bool = False, settle: float | None = None
    ) -> None:
        self.clock = clock
        self.auto_advance = auto_advance
        if settle is None:
            settle = AUTO_ADVANCE_SETTLE if auto_advance else DRIVEN_SETTLE
        self.settle = settle
        self._windows = 1 if auto_advance else DRIVEN_WINDOWS
        self._window = settle / self._windows
        self.waits: list[float] = []
        self._cond = threading.Condition()
        self._parked: list[float] = []
        self._in_flight = 0
        self._transports: list[ClockTransport] = []

    def sleep(self, seconds: float, since: float | None = None) -> None:
        """Park until the clock is ``seconds`` past ``since`` (the emulated time the request
        whose answer the wait follows was sent: in real time a wait begins as its answer
        arrives, so a clock the test advanced in between does not lengthen it), or past now."""
        with self._cond:
            self.waits.append(seconds)
        if seconds <= 0:
            return
        now = self.clock.monotonic()
        deadline = (now if since is None else min(since, now)) + seconds
        with self._cond:
            self._parked.append(deadline)
            self._cond.notify_all()
            try:
                quiet_windows = 0
                while self.clock.monotonic() < deadline:
                    quiet = self._quiet_window()
                    if quiet and self._in_flight == 0 and deadline <= min(self._parked):
                        quiet_windows += 1
                    else:
                        quiet_windows = 0
                    if quiet_windows >= self._windows:
                        self.clock.advance_to(deadline)
                        self._cond.notify_all()
            finally:
                self._parked.remove(deadline)
                self._cond.notify_all()

    def _quiet_window(self) -> bool:
        """Wait one window on the condition (held); True if nothing happened in it and, when
        driven, the process was not paused through it."""
        began = time.monotonic()
        if self._cond.wait(self._window):
            return False
        if self.auto_advance:
            return True
        return time.monotonic() - began <= self._window * STALL_FACTOR

    def wake(self) -> None:
        """Have parked waits look at the clock now rather than at their next ``settle`` tick."""
        with self._cond:
            self._cond.notify_all()

    def adopt(self, transport: ClockTransport) -> None:
        with self._cond:
            self._transports.append(transport)

    def close(self) -> None:
        """Close every adopted transport's connections. A client the test never closed would
        otherwise leave its pooled sockets to the garbage collector (a ResourceWarning)."""
        with self._cond:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Mark one HTTP request in flight: an auto-advancing clock holds still meanwhile."""
        with self._cond:
            self._in_flight += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()


# azure.core.pipeline.transport imports RequestsTransport lazily (module __getattr__), so mypy
# sees Any.
class ClockTransport(RequestsTransport):  # type: ignore[misc]
    """azure-core's requests transport, whose ``sleep`` (every RetryPolicy and LRO poller wait)
    goes to :class:`SdkWaits` instead of ``time.sleep``. Keywords are RequestsTransport's."""

    def __init__(self, waits: SdkWaits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waits = waits
        # Per thread, its last send's answer (None if it failed) and the emulated time it was
        # sent: an SDK wait follows an answer on the same thread (a poll, a throttled attempt)
        # and is timed from it. The answer describes the emulator at some moment after the send;
        # timing from its arrival instead would let a clock the test advanced while the request
        # was in flight lengthen the wait (a poll answered "InProgress" just before the test's
        # advance, then a whole Retry-After past it). The wait is also where the answer is known
        # to be done with: azure-core's RetryPolicy drops a throttled answer without closing it,
        # and the SDKs stream an LRO's first answer, so its socket would stay open until the
        # garbage collector found it (a ResourceWarning in whichever test runs then).
        self._answers: dict[int, tuple[Any, float]] = {}
        waits.adopt(self)

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = None
        sent_at = self.waits.clock.monotonic()
        try:
            with self.waits.request():
                response = super().send(request, **kwargs)
        finally:
            self._answers[threading.get_ident()] = (response, sent_at)
        return response

    def sleep(self, duration: float) -> None:
        response, sent_at = self._answers.pop(threading.get_ident(), (None, None))
        if response is not None:
            response.internal_response.close()
        self.waits.sleep(duration, since=sent_at)

    def close(self) -> None:
        answers, self._answers = list(self._answers.values()), {}
        for response, _ in answers:
            if response is not None:
                response.internal_response.close()
        super().close()


def sdk_client(
    client_cls: Callable[..., T],
    base_url: str,
    *,
    subscription_id: str | None = DEFAULT_SUBSCRIPTION,
    caller: str = "user@example.com",
    ca_file: str | Path | None = None,
    waits: SdkWaits | None = None,
    **kwargs: Any,
) -> T:
    """Build ``client_cls`` (any azure-mgmt-* client) against the emulator at ``base_url``.

    Pass ``subscription_id=None`` for clients that take none. Extra keywords go to the client
    (``polling_interval``, ``retry_total``, ``connection_verify``, ``transport``...). Given
    ``waits`` and no ``transport``, a synchronous client gets a :class:`ClockTransport`.
    """
    args: list[Any] = [StaticCredential(caller)]
    if subscription_id is not None:
        args.append(subscription_id)
    kwargs.setdefault("per_call_policies", [AllowHttp()])
    if ca_file is not None:
        kwargs.setdefault("connection_verify", str(ca_file))
    # A requests transport cannot serve the async (.aio) clients: they keep their own.
    is_async = ".aio" in getattr(client_cls, "__module__", "")
    if waits is not None and "transport" not in kwargs and not is_async:
        # All client keywords, as azure-core's PipelineClient passes them to the transport it
        # builds itself: connection_verify and the timeouts live there.
        kwargs["transport"] = ClockTransport(waits, **kwargs)
    return client_cls(*args, base_url=base_url, **kwargs)


@dataclass
class EmulatorHandle:
    base_url: str
    core: Emulator
    clock: Clock
    ca_file: Path | None = None
    waits: SdkWaits | None = None
    """Set when ``clock`` is a ManualClock: where the waits of ``client(...)`` clients go."""

    def client(self, client_cls: Callable[..., T], **kwargs: Any) -> T:
        """``client_cls`` bound to this emulator; with a ManualClock its retries and LRO polls
        wait on that clock. Pass ``transport=`` to opt out (e.g. ``RequestsTransport()``)."""
        if self.ca_file is not None:
            kwargs.setdefault("ca_file", self.ca_file)
        kwargs.setdefault("waits", self.waits)
        return sdk_client(client_cls, self.base_url, **kwargs)

    def inject(self, rule: Mapping[str, Any]) -> str:
        """Add a fault rule (see :func:`throttle`, :func:`fail_with`, :func:`slow`,
        :func:`stuck`) and return its id."""
        return self.core.faults.add_rule(rule).id

    def advance(self, seconds: float) -> None:
        """Advance the emulator's ManualClock."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("only a ManualClock can be advanced")
        self.clock.advance(seconds)
        if self.waits is not None:
            self.waits.wake()


@contextmanager
def emulator(
    *,
    clock: Clock | None = None,
    time_scale: float = 1.0,
    seed: int = 0,
    type_settings: Mapping[str, Mapping[str, Any]] | None = None,
    tls_dir: str | Path | None = None,
    retry_after_max: int = 10,
    auto_advance: bool = False,
) -> Iterator[EmulatorHandle]:
    """Serve a fresh emulator on a free loopback port for the duration of the block.

    ``auto_advance=True`` (ManualClock only) lets waiting SDK calls move the clock on one shared
    timeline; see :class:`SdkWaits`.
    """
    used_clock: Clock = clock if clock is not None else ManualClock()
    if isinstance(used_clock, ManualClock):
        waits: SdkWaits | None = SdkWaits(used_clock, auto_advance=auto_advance)
    elif auto_advance:
        raise ValueError("auto_advance needs a ManualClock")
    else:
        waits = None
    core = Emulator(
        used_clock,
        time_scale=time_scale,
        seed=seed,
        type_settings=type_settings,
        retry_after_max=retry_after_max,
    )
    server = serve(core, cert_dir=tls_dir)
    try:
        yield EmulatorHandle(
            server.base_url, core, used_clock, server.certs.ca if server.certs else None, waits
        )
    finally:
        if waits is not None:
            waits.close()
        server.stop()


# -- fault builders: the rule documents the admin API and --config accept ------------------


def _match(
    method: str | None, resource_type: str | None, id_pattern: str | None, operation: str | None
) -> dict[str, Any]:
    out = {
        "method": method,
        "resourceType": resource_type,
        "idPattern": id_pattern,
        "operation": operation,
    }
    return {k: v for k, v in out.items() if v is not None}


def _schedule(first_n: int | None, probability: float) -> dict[str, Any]:
    out: dict[str, Any] = {"probability": probability}
    if first_n is not None:
        out["firstN"] = first_n
    return out


def throttle(
    *,
    retry_after: float = 5,
    method: str | None = None,
    resource_type: str | None = None,
    id_pattern: str | None = None,
    operation: str | None = None,
    first_n: int | None = None,
    probability: float = 1.0,
) -> dict[str, Any]:
    """ARM's 429 SubscriptionRequestsThrottled with a Retry-After."""
    return {
        "match": _match(method, resource_type, id_pattern, operation),
        "effect": {
            "status": 429,
            "code": "SubscriptionRequestsThrottled",
            "message": "Number of write requests for subscription exceeded the limit. "
            f"Please try again after '{int(retry_after)}' seconds.",
            "retryAfter": retry_after,
        },
        "schedule": _schedule(first_n, probability),
    }


def fail_with(
    status: int,
    code: str,
    message: str,
    *,
    method: str | None = None,
    resource_type: str | None = None,
    id_pattern: str | None = None,
    operation: str | None = None,
    first_n: int | None = None,
    probability: float = 1.0,
) -> dict[str, Any]:
    """Answer matching requests with this ARM error instead of serving them."""
    return {
        "match": _match(method, resource_type, id_pattern, operation),
        "effect": {"status": status, "code": code, "message": message},
        "schedule": _schedule(first_n, probability),
    }


def slow(
    seconds: float,
    *,
    method: str | None = None,
    resource_type: str | None = None,
    id_pattern: str | None = None,
    operation: str | None = None,
    first_n: int | None = None,
) -> dict[str, Any]:
    """Add latency (× time scale) before matching requests are served."""
    return {
        "match": _match(method, resource_type, id_pattern, operation),
        "effect": {"latency": seconds},
        "schedule": _schedule(first_n, 1.0),
    }


def stuck(
    seconds: float,
    *,
    method: str | None = None,
    resource_type: str | None = None,
    id_pattern: str | None = None,
    operation: str | None = None,
    first_n: int | None = None,
) -> dict[str, Any]:
    """Matching writes start an operation that stays non-terminal, then ends Failed."""
    return {
        "match": _match(method, resource_type, id_pattern, operation),
        "effect": {"stuckFor": seconds},
        "schedule": _schedule(first_n, 1.0),
    }


def emulator_fixture(**options: Any) -> Any:
    """A pytest fixture serving an emulator per test: ``arm = emulator_fixture(time_scale=0)``."""
    # pytest is a test-time dependency: importing armguard.testing must not require it.
    import pytest  # noqa: PLC0415

    @pytest.fixture
    def _fixture() -> Iterator[EmulatorHandle]:
        with emulator(**options) as handle:
            yield handle

    return _fixture
