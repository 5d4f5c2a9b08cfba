"""The Starlette adapter: HTTP in, core calls, HTTP out. No ARM semantics live here.

It authenticates (any bearer token; a JWT names the caller), parses and bounds the body,
applies fault rules, runs the core in a worker thread (so the store's bucket locks, not the
event loop, decide concurrency) and renders ARM headers and error bodies. Anything unexpected
becomes a 500 with an ARM error body; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from armguard.arm.errors import ArmError, reason_phrase
from armguard.emulator.admin import admin_routes
from armguard.emulator.auth import caller_of, decode_claims, require_bearer
from armguard.emulator.core import Emulator, OpFault
from armguard.emulator.request import ArmRequest, ArmResponse, Call

__all__ = ["MAX_BODY_BYTES", "create_app", "error_response", "json_response"]

log = logging.getLogger("armguard.emulator")

MAX_BODY_BYTES = 4 * 1024 * 1024
_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS", "TRACE"]
_RATE_HEADERS = {
    "GET": ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    "HEAD": ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    "DELETE": ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
}
_INTERNAL_ERROR = {
    "error": {
        "code": "InternalServerError",
        "message": "The emulator hit an unexpected error; the request was not applied. See the "
        "emulator's log for the traceback.",
        "details": [],
    }
}
_COMMON_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Expires": "-1",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    out = Response(content=content, status_code=status, headers=headers)
    if body is not None:
        out.headers["Content-Type"] = "application/json; charset=utf-8"
    return out


def error_response(err: ArmError, headers: dict[str, str] | None = None) -> Response:
    return json_response(err.status, err.body(), {**(headers or {}), **err.headers})


async def read_json_body(request: Request) -> Any:
    """The JSON body, ``None`` if there is none; an ArmError 400/413/415 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
    if not raw.strip():
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (content_type.endswith("/json") or content_type.endswith("+json")):
        raise ArmError(
            415,
            "UnsupportedMediaType",
            f"The content media type '{content_type}' is not supported. Only "
            "'application/json' is supported.",
        )
    try:
        return json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{err}'.",
        ) from None


def _too_large() -> ArmError:
    return ArmError(
        413,
        "RequestEntityTooLarge",
        f"The request content size exceeds the maximum of {MAX_BODY_BYTES} bytes.",
    )


def base_url_of(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def create_app(core: Emulator) -> Starlette:
    async def arm(request: Request) -> Response:
        correlation = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        trace = {"x-ms-correlation-request-id": correlation}
        try:
            response = await _serve(core, request, correlation)
        except ArmError as err:
            response = ArmResponse(err.status, err.body(), dict(err.headers))
        except Exception:
            log.exception("unexpected failure serving %s %s", request.method, request.url.path)
            response = ArmResponse(500, _INTERNAL_ERROR)
        headers = dict(_COMMON_HEADERS)
        headers.update(trace)
        request_id = response.headers.get("x-ms-request-id") or str(uuid.uuid4())
        headers["x-ms-request-id"] = request_id
        stamp = datetime.fromtimestamp(core.now(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        headers["x-ms-routing-request-id"] = f"LOCAL:{stamp}:{correlation}"
        name, value = _RATE_HEADERS.get(
            request.method.upper(), ("x-ms-ratelimit-remaining-subscription-writes", "1199")
        )
        headers[name] = value
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id and request.headers.get("x-ms-return-client-request-id", "").lower() == "true":
            headers["x-ms-client-request-id"] = client_id
        headers.update(response.headers)
        if request.method.upper() == "HEAD":
            return Response(status_code=response.status, headers=headers)
        return json_response(response.status, response.body, headers)

    return Starlette(
        routes=[
            Mount("/_armguard", routes=admin_routes(core)),
            Route("/{path:path}", arm, methods=_METHODS),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing misses (only possible under /_armguard/) in ARM's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, reason_phrase(status))
    return json_response(
        status,
        {
            "error": {
                "code": code,
                "message": f"No route for {request.method} {request.url.path}.",
                "details": [],
            }
        },
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected failure serving %s %s", request.method, request.url.path, exc_info=exc)
    return json_response(500, _INTERNAL_ERROR)


async def _serve(core: Emulator, request: Request, correlation: str) -> ArmResponse:
    token = require_bearer(request.headers.get("authorization"))
    claims = decode_claims(token)
    body = await read_json_body(request)
    method = request.method.upper()
    path = request.url.path
    call = Call(
        base_url=base_url_of(request),
        api_version=request.query_params.get("api-version", ""),
        caller=caller_of(claims),
        correlation_id=correlation,
        client_request_id=request.headers.get("x-ms-client-request-id", ""),
        client_ip=request.client.host if request.client else "127.0.0.1",
        claims=claims,
    )
    op_fault: OpFault | None = None
    applied = await run_in_threadpool(core.match_fault, method, path)
    if applied is not None:
        if applied.effect.latency:
            await asyncio.sleep(core.scaled(applied.effect.latency))
        error = applied.http_error()
        if error is not None:
            await run_in_threadpool(core.record_rejection, method, path, call, error)
            raise error
        op_fault = core.op_fault_of(applied)
    arm_request = ArmRequest(
        method=method,
        path=path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        call=call,
    )
    return await run_in_threadpool(core.dispatch, arm_request, op_fault)
