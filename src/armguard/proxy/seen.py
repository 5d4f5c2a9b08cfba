"""What each caller last saw of each resource: the version a blind PUT is judged against.

Keyed by (caller, resource key), never shared between callers: one caller's read never
licenses another's write. Bounded (least recently used first out), and bodies above a size
limit are remembered by ETag only, so memory stays flat however large the estate.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from armguard.emulator.auth import decode_claims

__all__ = ["Caller", "Seen", "SeenVersions", "caller_of_headers"]


@dataclass(frozen=True)
class Caller:
    id: str
    """Stable and opaque: the token's ``oid``/``appid``, or a hash of the token."""
    name: str
    """For events and messages: ``upn``/``appid``/``oid``; never the token."""


def caller_of_headers(authorization: str | None) -> Caller:
    if not authorization:
        return Caller("anonymous", "anonymous")
    token = authorization.partition(" ")[2].strip() or authorization.strip()
    claims = decode_claims(token)
    ident = next(
        (str(claims[c]) for c in ("oid", "appid", "azp", "sub") if isinstance(claims.get(c), str)),
        None,
    )
    name = next(
        (str(claims[c]) for c in ("upn", "unique_name", "appid", "oid") if claims.get(c)),
        None,
    )
    if ident is None:
        ident = "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return Caller(ident, name or ident)


@dataclass(frozen=True)
class Seen:
    etag: str | None
    body: Mapping[str, Any] | None
    """None when the body was too large to keep (the ETag still guards it)."""


class SeenVersions:
    def __init__(self, max_entries: int = 20_000, max_body_bytes: int = 256 * 1024) -> None:
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes
        self._seen: OrderedDict[tuple[str, str], Seen] = OrderedDict()
        self._writers: OrderedDict[str, str] = OrderedDict()

    def remember(
        self, caller: Caller, key: str, etag: str | None, body: Mapping[str, Any] | None, size: int
    ) -> None:
        kept = body if size <= self.max_body_bytes else None
        entry = (caller.id, key)
        self._seen[entry] = Seen(etag, kept)
        self._seen.move_to_end(entry)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def get(self, caller: Caller, key: str) -> Seen | None:
        entry = (caller.id, key)
        seen = self._seen.get(entry)
        if seen is not None:
            self._seen.move_to_end(entry)
        return seen

    def wrote(self, caller: Caller, key: str) -> None:
        """Who last wrote ``key`` through this proxy, to name them in a refusal."""
        self._writers[key] = caller.name
        self._writers.move_to_end(key)
        while len(self._writers) > self.max_entries:
            self._writers.popitem(last=False)

    def last_writer(self, key: str) -> str | None:
        return self._writers.get(key)

    def __len__(self) -> int:
        return len(self._seen)
