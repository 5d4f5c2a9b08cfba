"""ARM's list paging: ``$top`` sets a page's size, ``nextLink`` continues a list.

A ``nextLink`` is the request's own URL with an opaque ``$skiptoken`` added: the position of
the last item handed out, so a page starts after it even if items were added or removed in
between (an offset would skip or repeat items then). Clients follow it as they find it; the
Python SDKs keep its query and only set ``api-version`` again.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from armguard.arm.errors import ArmError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "decode_token",
    "encode_token",
    "next_link",
    "page_size",
    "query_value",
]

DEFAULT_PAGE_SIZE = 1000
"""ARM's resource lists page at 1,000 items; the emulator's ``page_size`` option lowers it."""

_TOKEN_NAMES = ("$skiptoken", "$skipToken")


def query_value(query: Mapping[str, str], name: str) -> str | None:
    """A query parameter by name, whatever its case (ARM reads ``$Filter`` as ``$filter``)."""
    found = query.get(name)
    if found is not None:
        return found
    wanted = name.lower()
    for key, value in query.items():
        if key.lower() == wanted:
            return value
    return None


def page_size(query: Mapping[str, str], limit: int) -> int:
    """The size of the page asked for: ``$top`` if given, never more than ``limit``."""
    raw = query_value(query, "$top")
    if raw is None:
        return limit
    try:
        top = int(raw.strip())
    except ValueError:
        top = 0
    if top < 1:
        raise ArmError(
            400,
            "InvalidTopInQueryString",
            f"The value '{raw}' of the query parameter '$top' is not a positive integer.",
        )
    return min(top, limit)


def encode_token(position: Sequence[Any]) -> str:
    """An opaque ``$skiptoken`` for the position of the last item on a page."""
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(query: Mapping[str, str]) -> list[Any] | None:
    """The position a ``$skiptoken`` in ``query`` names, or None when there is none. A token
    that this emulator did not write is a 400, as ARM refuses one it cannot read."""
    raw = next((v for k in _TOKEN_NAMES if (v := query_value(query, k)) is not None), None)
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error):
        position = None
    if not isinstance(position, list) or not position:
        raise ArmError(
            400,
            "InvalidSkipToken",
            "The '$skiptoken' query parameter is not one this server issued; follow the "
            "nextLink of the previous page as it is.",
        )
    return position


def next_link(base_url: str, path: str, query: Mapping[str, str], token: str) -> str:
    """The request's URL again, its skip token replaced by ``token``."""
    kept = [(k, v) for k, v in query.items() if k.lower() not in ("$skiptoken",)]
    kept.append(("$skiptoken", token))
    return f"{base_url.rstrip('/')}{quote(path)}?{urlencode(kept, quote_via=quote, safe=',')}"
