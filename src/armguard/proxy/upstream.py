"""The connection to the upstream ARM endpoint, and the one answer shape the proxy handles.

Headers are forwarded as the client sent them except the hop-by-hop ones (RFC 9110 §7.6.1) and
``Accept-Encoding``: the proxy reads JSON bodies to rewrite links and remember versions, so it
asks ARM for identity encoding. The caller's ``Authorization`` only ever goes to the
upstream's origin: every URL the proxy sends to is resolved against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from armguard.proxy.rewrite import origin_of

__all__ = ["HOP_BY_HOP", "Answer", "Unreachable", "Upstream", "auth_headers", "forward_headers"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
    }
)


class Unreachable(Exception):
    """No answer from the upstream. ``sent`` says whether the request may have reached it:
    a refused connection did not, a timeout or reset after sending might have."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def json(self) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body) if self.body.strip() else None
            except (ValueError, RecursionError):
                self._json = None
        return self._json

    @property
    def etag(self) -> str | None:
        value = self.header("etag")
        if value:
            return value
        doc = self.json()
        if isinstance(doc, Mapping) and isinstance(doc.get("etag"), str):
            return str(doc["etag"])
        return None


def forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class Upstream:
    """One pooled HTTP client to the upstream for every caller (keep-alive across clients)."""

    def __init__(
        self,
        base: str,
        *,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        read_timeout: float = 300.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.origin = origin_of(self.base)
        self._client = httpx.AsyncClient(
            verify=verify,
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(connect=10.0, read=read_timeout, write=60.0, pool=60.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    def url(self, path_or_url: str) -> str:
        """An absolute URL on the upstream's origin. A URL on another origin is refused, so
        nothing the proxy sends (with a caller's token) can leave the upstream."""
        if path_or_url.startswith(("http://", "https://")):
            if origin_of(path_or_url) != self.origin:
                raise ValueError(f"'{path_or_url}' is not on the upstream's origin")
            return path_or_url
        return self.base + path_or_url

    async def send(
        self,
        method: str,
        path_or_url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> Answer:
        url = self.url(path_or_url)
        request = self._client.build_request(
            method, url, headers=forward_headers(headers), content=body or None
        )
        try:
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=False) from None
        except httpx.HTTPError as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=True) from None
        return Answer(response.status_code, list(response.headers.multi_items()), response.content)

    async def stream(
        self, method: str, path_or_url: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> httpx.Response:
        """A response whose body is still on the wire (reads the proxy passes through)."""
        request = self._client.build_request(
            method, self.url(path_or_url), headers=forward_headers(headers), content=body or None
        )
        try:
            return await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=False) from None
        except httpx.HTTPError as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=True) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def auth_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers the proxy's own reads and polls carry for a caller: its token and its
    client request id, nothing else, so RBAC is the caller's and never wider."""
    keep = {"authorization", "x-ms-client-request-id", "x-ms-correlation-request-id"}
    return [(k, v) for k, v in headers if k.lower() in keep]
