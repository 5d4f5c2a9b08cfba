"""The fencing token on the wire: every ARM call a lease makes names the lease's token in its
``x-ms-client-request-id``, which ARM keeps in the Activity Log (``httpRequest.clientRequestId``).

ARM cannot check a fencing token, so the store's fence alone cannot stop a worker that paused
past its lease from sending one last write; the ETag is the guard that can. What the token on
the wire gives is proof after the fact: reading the Activity Log, every write to a resource
names the lease that sent it, so an auditor (``armguard chaos``'s checker) can tell whether a
write came from a lease that had already lost its keys, and whether ARM refused it.

The id stays a GUID, as ARM expects: 20 random hex digits, a fixed marker, and the fence as the
last group (12 hex digits).
"""

from __future__ import annotations

import re
import secrets

__all__ = ["HEADER", "client_request_id", "fence_of"]

HEADER = "x-ms-client-request-id"
_MARKER = "af"
_MAX_FENCE = 16**12 - 1
_PATTERN = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-" + _MARKER + r"[0-9a-f]{2}-([0-9a-f]{12})$"
)


def client_request_id(fence: int) -> str:
    """A fresh GUID-shaped request id carrying ``fence``."""
    if not 0 <= fence <= _MAX_FENCE:
        raise ValueError(f"a fencing token must fit 48 bits, not {fence}")
    r = secrets.token_hex(10)
    return f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{_MARKER}{r[15:17]}-{fence:012x}"


def fence_of(request_id: str | None) -> int | None:
    """The fence a request id made by :func:`client_request_id` carries, else None."""
    if not request_id:
        return None
    match = _PATTERN.match(request_id.strip().lower())
    return int(match.group(1), 16) if match else None
