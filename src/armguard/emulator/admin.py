"""The control namespace under ``/_armguard/``: reset, seed, faults, state, health, clock.

No authentication (it is a local test tool) and no ARM semantics; errors are ARM-shaped so
every client can read them the same way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from armguard.arm.errors import ArmError
from armguard.clock import ManualClock, isoformat
from armguard.emulator.shapes import parse_json
from armguard.emulator.snapshot import LAST_INSTANT, StateError

if TYPE_CHECKING:
    from armguard.emulator.core import Emulator

__all__ = ["admin_routes"]

Handler = Callable[[Request], Awaitable[Response]]

MAX_ADVANCE = 10 * 365.25 * 24 * 3600


def _json(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
    )


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ArmError as err:
            return _json(err.status, err.body())

    return wrapped


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > 4 * 1024 * 1024:
        raise ArmError(413, "RequestEntityTooLarge", "The admin request body is too large.")
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArmError(400, "InvalidRequestContent", f"The body is not JSON: {err}.") from None
    return parse_json(text)


def _bad(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message)


def admin_routes(core: Emulator) -> list[Route]:
    async def health(request: Request) -> Response:
        return _json(
            200,
            {
                "status": "ok",
                "now": isoformat(core.now()),
                "timeScale": core.time_scale,
                "manualClock": isinstance(core.clock, ManualClock),
            },
        )

    async def reset(request: Request) -> Response:
        await run_in_threadpool(core.reset)
        return _json(200, {"status": "reset"})

    async def seed(request: Request) -> Response:
        body = await _body(request)
        value = body.get("seed") if isinstance(body, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad('The body must be {"seed": <integer>}.')
        core.reseed(value)
        core.faults.seed(value)
        return _json(200, {"seed": value})

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return _json(200, core.faults.to_json())
        if request.method == "DELETE":
            core.faults.reset()
            return _json(200, {"status": "cleared"})
        body = await _body(request)
        if not isinstance(body, dict):
            raise _bad("A fault rule must be a JSON object.")
        try:
            rule = core.faults.add_rule(body)
        except ValueError as err:
            raise _bad(str(err)) from None
        return _json(201, rule.to_json())

    async def fault(request: Request) -> Response:
        rule_id = request.path_params["rule_id"]
        if not core.faults.remove_rule(rule_id):
            raise ArmError(404, "FaultRuleNotFound", f"No fault rule '{rule_id}'.")
        return _json(200, {"removed": rule_id})

    async def applied(request: Request) -> Response:
        return _json(200, {"value": [a.to_json() for a in core.faults.applied()]})

    async def state(request: Request) -> Response:
        if request.method == "GET":
            return _json(200, await run_in_threadpool(core.dump))
        body = await _body(request)
        try:
            await run_in_threadpool(core.load, body)
        except StateError as err:
            raise _bad(str(err)) from None
        return _json(200, {"status": "loaded"})

    async def advance(request: Request) -> Response:
        clock = core.clock
        if not isinstance(clock, ManualClock):
            raise ArmError(
                409,
                "ClockNotManual",
                "The emulator runs on the system clock; only a manual clock can be advanced.",
            )
        body = await _body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= MAX_ADVANCE
        ):
            raise _bad(
                f'The body must be {{"seconds": <number from 0 to {MAX_ADVANCE:.0f}>}} '
                "(at most ten years at a time)."
            )
        # Every timestamp the emulator writes must stay a date ARM can print (year < 10000).
        if clock.now() + seconds >= LAST_INSTANT:
            raise _bad(f"Advancing {seconds:g} seconds would move the clock past the year 9999.")
        clock.advance(float(seconds))
        return _json(200, {"now": isoformat(clock.now())})

    return [
        Route("/health", _guard(health), methods=["GET"]),
        Route("/reset", _guard(reset), methods=["POST"]),
        Route("/seed", _guard(seed), methods=["POST"]),
        Route("/faults", _guard(faults), methods=["GET", "POST", "DELETE"]),
        Route("/faults/applied", _guard(applied), methods=["GET"]),
        Route("/faults/{rule_id}", _guard(fault), methods=["DELETE"]),
        Route("/state", _guard(state), methods=["GET", "POST"]),
        Route("/clock/advance", _guard(advance), methods=["POST"]),
    ]
