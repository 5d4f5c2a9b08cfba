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
Retry-After sent; SDK pollers sleep it in real time, so SDK tests pass 1). ``emulator_fixture(**kw)`` turns the
same keywords into a pytest fixture. ``sdk_client(cls, base_url, ...)`` builds any
``azure-mgmt-*`` client against any emulator URL, unmodified except base URL, credential and
``enforce_https``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from armguard.clock import Clock, ManualClock
from armguard.emulator.core import Emulator
from armguard.emulator.server import serve

__all__ = [
    "DEFAULT_SUBSCRIPTION",
    "AllowHttp",
    "EmulatorHandle",
    "ManualClock",
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


def sdk_client(
    client_cls: Callable[..., T],
    base_url: str,
    *,
    subscription_id: str | None = DEFAULT_SUBSCRIPTION,
    caller: str = "user@example.com",
    ca_file: str | Path | None = None,
    **kwargs: Any,
) -> T:
    """Build ``client_cls`` (any azure-mgmt-* client) against the emulator at ``base_url``.

    Pass ``subscription_id=None`` for clients that take none. Extra keywords go to the client
    (``polling_interval``, ``retry_total``, ``connection_verify``...).
    """
    args: list[Any] = [StaticCredential(caller)]
    if subscription_id is not None:
        args.append(subscription_id)
    kwargs.setdefault("per_call_policies", [AllowHttp()])
    if ca_file is not None:
        kwargs.setdefault("connection_verify", str(ca_file))
    return client_cls(*args, base_url=base_url, **kwargs)


@dataclass
class EmulatorHandle:
    base_url: str
    core: Emulator
    clock: Clock
    ca_file: Path | None = None

    def client(self, client_cls: Callable[..., T], **kwargs: Any) -> T:
        if self.ca_file is not None:
            kwargs.setdefault("ca_file", self.ca_file)
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


@contextmanager
def emulator(
    *,
    clock: Clock | None = None,
    time_scale: float = 1.0,
    seed: int = 0,
    type_settings: Mapping[str, Mapping[str, Any]] | None = None,
    tls_dir: str | Path | None = None,
    retry_after_max: int = 10,
) -> Iterator[EmulatorHandle]:
    """Serve a fresh emulator on a free loopback port for the duration of the block."""
    used_clock: Clock = clock if clock is not None else ManualClock()
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
            server.base_url, core, used_clock, server.certs.ca if server.certs else None
        )
    finally:
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
