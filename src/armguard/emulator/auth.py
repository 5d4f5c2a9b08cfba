"""Bearer tokens: required, never verified. A JWT's identity claim names the caller in the
Activity Log, so tests can tell two writers apart by the token they send."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any

from armguard.arm.errors import ArmError

__all__ = ["CALLER_CLAIMS", "caller_of", "decode_claims", "require_bearer"]

CALLER_CLAIMS = ("upn", "unique_name", "appid", "oid")


def require_bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header, or ARM's 401."""
    if header is None or not header.strip():
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )
    return token.strip()


def decode_claims(token: str) -> dict[str, Any]:
    """The unverified payload of a JWT, or ``{}`` for anything that is not one. A fresh dict
    each call (callers may keep or change it); decoding is cached, as a client sends the same
    token until it expires."""
    return dict(_decoded(token))


@functools.lru_cache(maxsize=256)
def _decoded(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def caller_of(claims: dict[str, Any]) -> str:
    for claim in CALLER_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value
    return "unknown"
