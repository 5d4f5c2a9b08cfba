"""The ARM error envelope: ``{"error": {"code", "message", "target", "details", "additionalInfo"}}``.

One type serves both directions: the emulator raises :class:`ArmError` and renders its body; the
coordinator and diagnostics parse bodies into it. Async failures carry the same ``error`` object
inside an operation-status document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["ArmError", "ErrorDetail", "parse_error_body", "reason_phrase"]


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    message: str
    target: str | None = None
    details: tuple[ErrorDetail, ...] = ()
    additional_info: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            out["target"] = self.target
        out["details"] = [d.to_json() for d in self.details]
        if self.additional_info:
            out["additionalInfo"] = [dict(i) for i in self.additional_info]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorDetail:
        raw_details = data.get("details") or []
        details = tuple(cls.from_json(d) for d in raw_details if isinstance(d, Mapping))
        info = data.get("additionalInfo") or []
        return cls(
            code=str(data.get("code") or ""),
            message=str(data.get("message") or ""),
            target=str(data["target"]) if data.get("target") is not None else None,
            details=details,
            additional_info=tuple(i for i in info if isinstance(i, Mapping)),
        )

    def walk(self) -> list[ErrorDetail]:
        """This detail and every nested one, depth first."""
        out = [self]
        for d in self.details:
            out.extend(d.walk())
        return out


class ArmError(Exception):
    """An ARM-shaped failure: HTTP status, the error object, and headers to send with it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: Sequence[ErrorDetail] = (),
        additional_info: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.status = status
        self.error = ErrorDetail(code, message, target, tuple(details), tuple(additional_info))
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message

    def body(self) -> dict[str, Any]:
        return {"error": self.error.to_json()}

    def body_text(self) -> str:
        return json.dumps(self.body(), separators=(",", ":"))


def parse_error_body(
    status: int | None, body: bytes | str | Mapping[str, Any] | None
) -> ErrorDetail:
    """Read an ARM error body, wrapped (``{"error": …}``) or flat (AKS), or an operation status.

    Never raises: an unreadable body becomes code ``""`` with the text as message, so callers can
    still classify on status and text.
    """
    data: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            return ErrorDetail("", text.strip()[:4000])
    if not isinstance(data, Mapping):
        return ErrorDetail("", "" if data is None else str(data)[:4000])
    inner = data.get("error")
    if isinstance(inner, Mapping):
        return ErrorDetail.from_json(inner)
    if "code" in data or "message" in data:
        return ErrorDetail.from_json(data)
    return ErrorDetail("", "")


def reason_phrase(status: int) -> str:
    """``409`` → ``Conflict``, as the Activity Log's statusCode property spells it."""
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return str(status)
