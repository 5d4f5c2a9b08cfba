"""The proxy's own answers, shaped as ARM's, so every client already knows how to read them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response

__all__ = ["arm_error"]


def arm_error(
    status: int,
    code: str,
    message: str,
    *,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = [dict(d) for d in details]
    return Response(
        json.dumps({"error": error}, separators=(",", ":")),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers={"x-ms-armguard-proxy": "answered", **(headers or {})},
    )
