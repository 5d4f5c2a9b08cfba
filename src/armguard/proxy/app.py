"""The proxy's HTTP face: reads pass through, writes take turns (:mod:`.write`), and the cloud
metadata document names the proxy as the resource manager."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from armguard.arm.metadata import metadata_response
from armguard.proxy.clouds import proxy_metadata
from armguard.proxy.errors import arm_error
from armguard.proxy.seen import caller_of_headers
from armguard.proxy.target import parse_json_object, write_target
from armguard.proxy.upstream import Answer, Streamed, Unreachable, wire_path
from armguard.proxy.write import Proxy

__all__ = ["ProxyApp"]

log = logging.getLogger("armguard.proxy")

_JSON_TYPES = ("application/json", "text/json", "+json")


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and any(t in content_type.lower() for t in _JSON_TYPES)


class ProxyApp:
    """An ASGI app around one :class:`~armguard.proxy.write.Proxy`."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except Exception:  # the proxy must answer; a bug is a 500 with an ARM body
            log.exception("proxy failed on %s %s", request.method, request.url.path)
            response = arm_error(
                500, "InternalServerError", "The armguard proxy failed on this request."
            )
        if response is not None:
            await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.proxy.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, request: Request) -> Response | None:
        path = request.url.path
        if path.rstrip("/").lower() == "/metadata/endpoints" and request.method == "GET":
            return await self._metadata(request)
        if path == "/_armguard/proxy/health":
            return Response(b'{"status":"ok"}', media_type="application/json")
        length = request.headers.get("content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.proxy.settings.max_body_bytes
        ):
            return arm_error(
                413,
                "RequestEntityTooLarge",
                f"The request body is larger than the proxy accepts "
                f"({self.proxy.settings.max_body_bytes} bytes).",
            )
        target = None
        body = b""
        if request.method.upper() in ("PUT", "PATCH", "DELETE", "POST"):
            body = await request.body()
            doc = parse_json_object(body)
            target = write_target(request.method, path, doc, ())
            if target is not None:
                learned = self.proxy.learned_for(target.keys)
                if learned:
                    target = write_target(request.method, path, doc, learned)
        if target is None:
            return await self._pass_through(request, body)
        assert target is not None
        return await self.proxy.write(request, target, body)

    async def _pass_through(self, request: Request, body: bytes) -> Response:
        p = self.proxy
        path_qs = wire_path(request.scope)
        headers = list(request.headers.items())
        try:
            streamed = await p.upstream.stream(request.method, path_qs, headers, body)
        except Unreachable as err:
            return p.unreachable(err)
        content_type = streamed.header("content-type")
        # A compressed body passes through as it came: the proxy asked for none, so only an
        # upstream that ignores that sends one, and its bytes are not the proxy's to rewrite.
        encoded = streamed.header("content-encoding") not in (None, "", "identity")
        if not _is_json(content_type) or encoded or request.method.upper() == "HEAD":
            p.metrics.requests.labels(request.method, f"{streamed.status_code // 100}xx").inc()
            return _streaming(streamed, p.public_headers(streamed.headers, raw=True))
        try:
            content = await streamed.aread()
        except Unreachable as err:
            return p.unreachable(err)
        finally:
            await streamed.aclose()
        answer = Answer(streamed.status_code, streamed.headers, content)
        if request.method.upper() == "GET":
            caller = caller_of_headers(request.headers.get("authorization"))
            p.remember_read(caller, request.url.path, answer)
        return p.respond(request.method, answer)

    async def _metadata(self, request: Request) -> Response:
        """The upstream's own document with the proxy as resource manager; the cloud's
        table when the upstream serves none."""
        p = self.proxy
        path_qs = wire_path(request.scope)
        doc: Any = None
        try:
            answer = await p.upstream.send("GET", path_qs, [("accept", "application/json")])
            if answer.status == 200:
                doc = answer.json()
        except Unreachable:
            doc = None
        public = p.public_url.rstrip("/") + "/"
        if isinstance(doc, list) and all(isinstance(d, Mapping) for d in doc):
            doc = [{**d, "resourceManager": public} if "resourceManager" in d else d for d in doc]
        elif isinstance(doc, Mapping):
            # The legacy shape names no resource manager: clients that read it take the
            # endpoint they were given, which is the proxy already.
            doc = {**doc, "resourceManager": public} if "resourceManager" in doc else doc
        else:
            version = request.query_params.get("api-version", "")
            doc = metadata_response(proxy_metadata(p.settings.cloud, public), version)
        return Response(
            json.dumps(doc, separators=(",", ":")), media_type="application/json; charset=utf-8"
        )


def _streaming(streamed: Streamed, headers: dict[str, str]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in streamed.aiter_raw():
                yield chunk
        finally:
            await streamed.aclose()

    return StreamingResponse(body(), status_code=streamed.status_code, headers=headers)
