"""Absolute URLs in ARM's answers, pointed back at the proxy.

ARM hands out absolute URLs — ``Azure-AsyncOperation`` and ``Location`` for long-running
operations, ``nextLink`` for pages, ``id``-like links in some bodies. A client that can reach
only the proxy must poll and page through it, and the proxy must see every operation end, so
every URL on the upstream's origin is rewritten onto the proxy's. Other origins (a storage
data plane, a login endpoint) are left alone: they are not ARM's, and the caller's token is
never sent to them by the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["URL_HEADERS", "Origins", "origin_of"]

URL_HEADERS = ("azure-asyncoperation", "location", "operation-location")


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, lower-cased, without a default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("https", 443), ("http", 80)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class Origins:
    """The upstream's origin and the proxy's, and the rewrites between them."""

    def __init__(self, upstream: str, public: str) -> None:
        self.upstream = origin_of(upstream)
        self.public = origin_of(public)
        self._upstream_bytes = self.upstream.encode()
        self._public_bytes = self.public.encode()
        self._links = re.compile(
            rb'("(?:nextLink|@odata\.nextLink|nextPageLink)"\s*:\s*")'
            + re.escape(self._upstream_bytes),
            re.IGNORECASE,
        )

    def to_public(self, url: str) -> str:
        """``url`` on the proxy's origin when it is on the upstream's; otherwise unchanged."""
        if origin_of(url) != self.upstream:
            return url
        parts = urlsplit(url)
        return self.public + url[len(f"{parts.scheme}://{parts.netloc}") :]

    def to_upstream(self, url: str) -> str:
        """The reverse of :meth:`to_public`, for URLs a client sends back (a status URL)."""
        if origin_of(url) == self.public:
            parts = urlsplit(url)
            return self.upstream + url[len(f"{parts.scheme}://{parts.netloc}") :]
        return url

    def headers_to_public(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = dict(headers)
        for name in list(out):
            if name.lower() in URL_HEADERS:
                out[name] = self.to_public(out[name])
        return out

    def body_to_public(self, body: bytes) -> bytes:
        """The body with its paging links (``nextLink``) on the proxy's origin.

        Only link members are touched, by a byte-level substitution rather than a parse and a
        dump: a resource property that merely mentions the upstream (an audience, a callback)
        keeps its value, and ARM's exact bytes survive for everything else.
        """
        if self._upstream_bytes not in body:
            return body
        return self._links.sub(lambda m: m.group(1) + self._public_bytes, body)
