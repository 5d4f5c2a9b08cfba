"""The Starlette adapter: HTTP in, core calls, HTTP out. No ARM semantics live here.

It authenticates (any bearer token; a JWT names the caller), parses and bounds the body,
applies fault rules, runs the core (on the event loop for single-resource requests, in a
worker thread for scans and deployments; the store's bucket locks decide concurrency either
way) and renders ARM headers and error bodies. Anything unexpected becomes a 500 with an ARM
error body; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from armguard.arm.errors import ArmError, reason_phrase
from armguard.emulator.admin import admin_routes
from armguard.emulator.auth import caller_of, decode_claims, require_bearer
from armguard.emulator.core import Emulator, OpFault
from armguard.emulator.identity import LocalDirectory, is_identity_path
from armguard.emulator.refusals import internal_error
from armguard.emulator.request import ArmRequest, ArmResponse, Call
from armguard.emulator.shapes import invalid_content, parse_json
from armguard.emulator.subscriptions import SubscriptionApi, is_subscription_api_path

__all__ = [
    "ADMIN_PREFIX",
    "MAX_BODY_BYTES",
    "create_app",
    "error_response",
    "json_response",
    "parse_json_body",
]

log = logging.getLogger("armguard.emulator")

MAX_BODY_BYTES = 4 * 1024 * 1024
ADMIN_PREFIX = "/_armguard/"
_METHODS = frozenset(["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS", "TRACE"])
_WRITE_RATE_HEADER = ("x-ms-ratelimit-remaining-subscription-writes", "1199")
_JSON_TYPE = b"application/json; charset=utf-8"
# What json.dumps(body, separators=(",", ":")) uses, built once instead of per response.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_RATE_HEADERS = {
    "GET": ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    "HEAD": ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    "DELETE": ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
}
_INTERNAL_ERROR = internal_error().body()
_COMMON_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Expires": "-1",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else _ENCODER.encode(body).encode()
    out = Response(content=content, status_code=status, headers=headers)
    if body is not None:
        out.headers["Content-Type"] = "application/json; charset=utf-8"
    return out


def error_response(err: ArmError, headers: dict[str, str] | None = None) -> Response:
    return json_response(err.status, err.body(), {**(headers or {}), **err.headers})


def parse_json_body(raw: bytes, content_type_header: str) -> Any:
    if not raw.strip():
        return None
    content_type = content_type_header.split(";", maxsplit=1)[0].strip().lower()
    if content_type and not (content_type.endswith("/json") or content_type.endswith("+json")):
        raise ArmError(
            415,
            "UnsupportedMediaType",
            f"The content media type '{content_type}' is not supported. Only "
            "'application/json' is supported.",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid_content(f"'{err}'.") from None
    return parse_json(text)


def _too_large() -> ArmError:
    return ArmError(
        413,
        "RequestEntityTooLarge",
        f"The request content size exceeds the maximum of {MAX_BODY_BYTES} bytes.",
    )


def base_url_of(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def create_app(core: Emulator, directory: LocalDirectory | None = None) -> ASGIApp:
    """The emulator's ASGI app: ARM requests on a lean path, ``/_armguard/`` on Starlette,
    the local Entra ID and cloud metadata (no token needed) from ``directory``.

    ARM requests skip Starlette's routing, middleware and request objects: on a small machine
    those cost more CPU than the core itself, and every ARM path shares one handler anyway.
    """
    login = directory or LocalDirectory()
    subscriptions = SubscriptionApi(core)
    admin = Starlette(
        routes=[Mount("/_armguard", routes=admin_routes(core))],
        exception_handlers={
            HTTPException: _http_error,
            ClientDisconnect: _disconnected,
            Exception: _unexpected,
        },
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await admin(scope, receive, send)
            return
        if scope["method"] not in _METHODS:
            await _send(send, _no_route(405, scope["method"], _path_of(scope)), head_only=False)
            return
        try:
            if is_identity_path(scope["path"]):
                out = await _login(login, scope, receive)
            else:
                out = await _arm(core, subscriptions, scope, receive)
        except ClientDisconnect:
            # Nobody is left to answer; uvicorn drops the connection.
            _log_disconnect(scope["method"], _path_of(scope))
            return
        except Exception as exc:
            log.error(
                "unexpected failure serving %s %s", scope["method"], scope["path"], exc_info=exc
            )
            out = _rendered(500, _INTERNAL_ERROR, {})
        await _send(send, out, head_only=scope["method"].upper() == "HEAD")

    return app


class _Head:
    """A request's headers, decoded once: ``first`` answers like Starlette's ``Headers.get``
    (the first occurrence), ``last`` like a dict built from them (the last one wins)."""

    __slots__ = ("first", "last")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.first: dict[str, str] = {}
        self.last: dict[str, str] = {}
        for key, value in raw:
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.last[name] = text
            if name not in self.first:
                self.first[name] = text


async def _login(directory: LocalDirectory, scope: Scope, receive: Receive) -> _Rendered:
    """A request to the local Entra ID or the metadata document: no token, no ARM headers."""
    head = _Head(scope["headers"])
    raw = await _read_raw(receive, head)
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    reply = directory.serve(
        scope["method"], scope["path"], query, bytes(raw), _base_url(scope, head)
    )
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", **reply.headers}
    return _rendered(reply.status, reply.body, headers)


async def _arm(
    core: Emulator, subscriptions: SubscriptionApi, scope: Scope, receive: Receive
) -> _Rendered:
    head = _Head(scope["headers"])
    method = scope["method"].upper()
    correlation = head.first.get("x-ms-correlation-request-id") or _new_id()
    try:
        response = await _serve(
            core, scope, receive, head, correlation, subscriptions=subscriptions
        )
    except ArmError as err:
        response = ArmResponse(err.status, err.body(), dict(err.headers))
    except ClientDisconnect:
        raise  # the client's doing, not a failure of ours: the caller logs one line
    except Exception:
        log.exception("unexpected failure serving %s %s", scope["method"], _path_of(scope))
        response = ArmResponse(500, _INTERNAL_ERROR)
    headers = dict(_COMMON_HEADERS)
    headers["x-ms-correlation-request-id"] = correlation
    headers["x-ms-request-id"] = response.headers.get("x-ms-request-id") or _new_id()
    stamp = datetime.fromtimestamp(core.now(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    headers["x-ms-routing-request-id"] = f"LOCAL:{stamp}:{correlation}"
    name, value = _RATE_HEADERS.get(method, _WRITE_RATE_HEADER)
    headers[name] = value
    client_id = head.first.get("x-ms-client-request-id")
    if client_id and head.first.get("x-ms-return-client-request-id", "").lower() == "true":
        headers["x-ms-client-request-id"] = client_id
    headers.update(response.headers)
    if method == "HEAD":
        return _rendered(response.status, None, headers)
    return _rendered(response.status, response.body, headers)


# Correlation ids only need to be unique: uuid4() reads the OS's entropy on every call.
_ID_BITS = random.Random()


def _new_id() -> str:
    return str(uuid.UUID(int=_ID_BITS.getrandbits(128), version=4))


class _Rendered:
    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, content: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.content = content
        self.headers = headers


_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _header_value(value: str) -> bytes:
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    # A value built from a caller's input (a location in an operation URL) can hold what no
    # header may carry (a control character, a lone surrogate): percent-encoded, as in a URL.
    return quote(value, safe=_HEADER_SAFE, errors="surrogatepass").encode("ascii")


def _rendered(status: int, body: Any, headers: dict[str, str]) -> _Rendered:
    """The wire form of a JSON response, header for header what ``json_response`` builds."""
    content = b"" if body is None else _ENCODER.encode(body).encode()
    raw = [(k.lower().encode("latin-1"), _header_value(v)) for k, v in headers.items()]
    names = [k for k, _ in raw]
    if b"content-length" not in names and not (status < 200 or status in (204, 304)):
        raw.append((b"content-length", str(len(content)).encode("latin-1")))
        names.append(b"content-length")
    if body is not None:
        typed = [i for i, name in enumerate(names) if name == b"content-type"]
        for i in reversed(typed[1:]):
            del raw[i]
        if typed:
            raw[typed[0]] = (b"content-type", _JSON_TYPE)
        else:
            raw.append((b"content-type", _JSON_TYPE))
    return _Rendered(status, content, raw)


async def _send(send: Send, out: _Rendered, *, head_only: bool) -> None:
    await send({"type": "http.response.start", "status": out.status, "headers": out.headers})
    await send({"type": "http.response.body", "body": b"" if head_only else out.content})


def _no_route(status: int, method: str, path: str) -> _Rendered:
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, reason_phrase(status))
    body = {"error": {"code": code, "message": f"No route for {method} {path}.", "details": []}}
    return _rendered(status, body, {})


def _path_of(scope: Scope) -> str:
    """The request path as Starlette's ``request.url.path`` gives it."""
    path: str = scope["path"]
    if path.startswith("//") or any(c in path for c in "?#\\"):
        # Rare shapes whose URL form differs from the raw path: let Starlette decide.
        return URL(scope=scope).path
    return path


def _base_url(scope: Scope, head: _Head) -> str:
    host = head.first.get("host")
    if host:
        return f"{scope.get('scheme', 'http')}://{host}"
    return base_url_of(Request(scope))


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


def _log_disconnect(method: str, path: str) -> None:
    # A client that hangs up mid-body (a killed process, a timeout) is routine for a server:
    # one line, no traceback. The write was never read, so nothing else happened.
    log.warning("client disconnected before sending the whole body: %s %s", method, path)


async def _disconnected(request: Request, exc: Exception) -> Response:
    _log_disconnect(request.method, request.url.path)
    # Sent to nobody (uvicorn discards it), but Starlette wants a response.
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected failure serving %s %s", request.method, request.url.path, exc_info=exc)
    return json_response(500, _INTERNAL_ERROR)


async def _serve(
    core: Emulator,
    scope: Scope,
    receive: Receive,
    head: _Head,
    correlation: str,
    *,
    subscriptions: SubscriptionApi,
) -> ArmResponse:
    # Unauthenticated requests name no caller, so they are refused before anything is logged.
    token = require_bearer(head.first.get("authorization"))
    claims = decode_claims(token)
    method = scope["method"].upper()
    path = _path_of(scope)
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    client = scope.get("client")
    call = Call(
        base_url=_base_url(scope, head),
        api_version=query.get("api-version", ""),
        caller=caller_of(claims),
        correlation_id=correlation,
        client_request_id=head.first.get("x-ms-client-request-id", ""),
        client_ip=client[0] if client else "127.0.0.1",
        claims=claims,
    )
    try:
        body = await _read_json_body(receive, head)
    except ArmError as err:
        # ARM logs a write it could not even read (bad JSON, 413, 415) as a failed write.
        core.record_rejection(method, path, call, err)
        raise
    if is_subscription_api_path(method, path):
        # Listing subscriptions and providers reads the whole store: off the event loop.
        return await run_in_threadpool(
            subscriptions.serve,
            ArmRequest(method, path, query, dict(head.last), body, call),
        )
    # The core is synchronous and its critical sections are short, so most requests run on
    # the event loop thread: a hop to a worker thread costs more than the request itself.
    # Its bucket locks still decide concurrency with anything running in worker threads.
    op_fault: OpFault | None = None
    applied = core.match_fault(method, path)
    if applied is not None:
        if applied.effect.latency:
            await asyncio.sleep(core.scaled(applied.effect.latency))
        error = applied.http_error()
        if error is not None:
            core.record_rejection(method, path, call, error)
            raise error
        op_fault = core.op_fault_of(applied)
    arm_request = ArmRequest(
        method=method,
        path=path,
        query=query,
        headers=dict(head.last),
        body=body,
        call=Call(
            base_url=call.base_url,
            api_version=call.api_version,
            caller=call.caller,
            correlation_id=call.correlation_id,
            client_request_id=call.client_request_id,
            client_ip=call.client_ip,
            request_id=core.new_guid(),
            claims=call.claims,
        ),
    )
    try:
        if core.runs_inline(method, path):
            return core.dispatch(arm_request, op_fault)
        return await run_in_threadpool(core.dispatch, arm_request, op_fault)
    finally:
        if applied is not None:
            core.fault_served(applied, op_fault)


async def _read_json_body(receive: Receive, head: _Head) -> Any:
    """The JSON body, ``None`` if there is none; an ArmError 400/413/415 otherwise."""
    raw = await _read_raw(receive, head)
    return parse_json_body(bytes(raw), head.first.get("content-type", ""))


async def _read_raw(receive: Receive, head: _Head) -> bytearray:
    declared = head.first.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    raw = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.request":
            raw.extend(message.get("body", b""))
            if len(raw) > MAX_BODY_BYTES:
                raise _too_large()
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return raw
