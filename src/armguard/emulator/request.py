"""Protocol-neutral request and response records: what the HTTP adapter hands the core and
what it gets back. No web framework types cross this line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArmRequest", "ArmResponse", "Call"]


@dataclass(frozen=True)
class Call:
    """Who is calling and how to reach the caller back (absolute URLs, tracing)."""

    base_url: str
    api_version: str
    caller: str = "unknown"
    correlation_id: str = ""
    client_request_id: str = ""
    client_ip: str = "127.0.0.1"
    request_id: str = ""
    """The x-ms-request-id of this request; an async operation's id equals it."""
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArmRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    """Lower-case header names."""
    body: Any
    call: Call

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class ArmResponse:
    status: int
    body: Any = None
    """A JSON value, or None for an empty body."""
    headers: dict[str, str] = field(default_factory=dict)
