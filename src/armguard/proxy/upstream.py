"""The connection to the upstream ARM endpoint, and the one answer shape the proxy handles.

Headers are forwarded as the client sent them except the hop-by-hop ones (RFC 9110 §7.6.1) and
``Accept-Encoding``: the proxy reads JSON bodies to rewrite links and remember versions, so it
asks ARM for identity encoding. The caller's ``Authorization`` only ever goes to the
upstream's origin: every URL the proxy sends to is resolved against it.
"""

from __future__ import annotations

import gzip
import json
import ssl
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from multidict import CIMultiDict

from armguard.proxy.rewrite import origin_of

__all__ = [
    "HOP_BY_HOP",
    "Answer",
    "Streamed",
    "Unreachable",
    "Upstream",
    "auth_headers",
    "forward_headers",
    "wire_path",
]

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


def wire_path(scope: Mapping[str, Any], *, query: bool = True) -> str:
    """The request target as the caller put it on the wire. Starlette's ``url.path`` is
    decoded, and an ARM name may hold an escaped ``/`` or space that decoding would turn into
    another resource, or an invalid request line."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    qs = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{qs}" if query and qs else path


def forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class Streamed:
    """An upstream response whose body is still on the wire (reads the proxy passes through).
    Its bytes are ARM's own, compressed or not: nothing is decoded on the way."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = _header_pairs(response)

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=True) from None

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


def _header_pairs(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    # raw_headers keeps repeats and ARM's own spelling; latin-1 is HTTP's byte-preserving
    # header encoding.
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]


def _ssl(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


class Upstream:
    """One pooled HTTP client to the upstream for every caller (keep-alive across clients).

    The session is made on first use, inside the serving event loop, which aiohttp requires.
    """

    def __init__(
        self, base: str, *, verify: bool | str = True, read_timeout: float = 300.0
    ) -> None:
        self.base = base.rstrip("/")
        self.origin = origin_of(self.base)
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10.0, sock_read=read_timeout, connect=60.0
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=256, limit_per_host=256, ssl=_ssl(self._verify), keepalive_timeout=60.0
                ),
                timeout=self._timeout,
                # The caller's own headers go upstream as sent; aiohttp must not add its
                # User-Agent, Accept, compression or a guessed Content-Type.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def url(self, path_or_url: str) -> str:
        """An absolute URL on the upstream's origin. A URL on another origin is refused, so
        nothing the proxy sends (with a caller's token) can leave the upstream."""
        if path_or_url.startswith(("http://", "https://")):
            if origin_of(path_or_url) != self.origin:
                raise ValueError(f"'{path_or_url}' is not on the upstream's origin")
            return path_or_url
        return self.base + path_or_url

    async def _open(
        self, method: str, path_or_url: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> aiohttp.ClientResponse:
        # encoded=True: the path and query go upstream byte for byte as the caller wrote
        # them (ARM names may hold escapes that re-quoting would change).
        url = yarl.URL(self.url(path_or_url), encoded=True)
        try:
            return await self._client().request(
                method,
                url,
                headers=CIMultiDict(forward_headers(headers)),
                data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=False) from None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unreachable(f"{type(err).__name__}: {err}", sent=True) from None

    async def send(
        self,
        method: str,
        path_or_url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> Answer:
        response = await self._open(method, path_or_url, headers, body)
        try:
            streamed = Streamed(response)
            content = await streamed.aread()
            return Answer(streamed.status_code, streamed.headers, _decoded(streamed, content))
        finally:
            response.release()

    async def stream(
        self, method: str, path_or_url: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> Streamed:
        return Streamed(await self._open(method, path_or_url, headers, body))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _decoded(streamed: Streamed, content: bytes) -> bytes:
    """The body an Answer holds is plain: the proxy asks for identity encoding, but an
    upstream that compresses anyway is decoded here (its Content-Encoding is dropped on the
    way out, as a hop-by-hop header)."""
    encoding = (streamed.header("content-encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(content)
    if encoding == "deflate":
        try:
            return zlib.decompress(content)
        except zlib.error:
            return zlib.decompress(content, -zlib.MAX_WBITS)
    return content


def auth_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers the proxy's own reads and polls carry for a caller: its token and its
    client request id, nothing else, so RBAC is the caller's and never wider."""
    keep = {"authorization", "x-ms-client-request-id", "x-ms-correlation-request-id"}
    return [(k, v) for k, v in headers if k.lower() in keep]
