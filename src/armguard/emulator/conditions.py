"""If-Match / If-None-Match evaluation, exactly per the RPC Addendum's ETag table.

| Request                      | absent | present               |
|------------------------------|--------|-----------------------|
| PUT, no If-Match             | 201    | 200                   |
| PUT If-Match: *              | 412    | 200                   |
| PUT If-Match: "x"            | 412    | 200 if it matches/412 |
| PUT If-None-Match: *         | 201    | 412                   |
| PATCH, no If-Match or *      | 404    | 200                   |
| PATCH If-Match: "x"          | 404    | 200 / 412             |
| DELETE, no If-Match or *     | 204    | 200                   |
| DELETE If-Match: "x"         | 204    | 200 / 412             |

``If-None-Match: "x"`` on a present resource fails when it matches (the IfModified
condition). Pure functions: no store, no clock.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "etags_match", "evaluate", "normalize_etag"]


class Outcome(StrEnum):
    PROCEED = "proceed"
    PRECONDITION_FAILED = "precondition_failed"
    NOT_FOUND = "not_found"
    NO_CONTENT = "no_content"


def normalize_etag(value: str) -> str:
    """The opaque part of an ETag: ``W/"abc"``, ``"abc"`` and ``abc`` all give ``abc``.

    The SDK's ``quote_etag`` wraps bare values in quotes and keeps ``W/`` prefixes, and users
    paste either form into ``headers={"If-Match": ...}``; weak comparison is what RPs apply.
    """
    text = value.strip()
    if text[:2].upper() == "W/":
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text


def _candidates(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def etags_match(header: str, current: str | None) -> bool:
    """True if any ETag in a (possibly comma-separated) header equals ``current`` or is ``*``."""
    wanted = _candidates(header)
    if "*" in wanted:
        return current is not None
    if current is None:
        return False
    live = normalize_etag(current)
    return any(normalize_etag(w) == live for w in wanted)


def evaluate(
    method: str,
    exists: bool,
    current_etag: str | None,
    if_match: str | None,
    if_none_match: str | None,
) -> Outcome:
    """Decide a conditional request. ``current_etag`` is None for types without ETags."""
    method = method.upper()
    if_match = if_match.strip() if if_match and if_match.strip() else None
    if_none_match = if_none_match.strip() if if_none_match and if_none_match.strip() else None
    if not exists:
        if method == "PATCH":
            return Outcome.NOT_FOUND
        if method == "DELETE":
            return Outcome.NO_CONTENT
        if method == "PUT" and if_match is not None:
            return Outcome.PRECONDITION_FAILED
        return Outcome.PROCEED
    if if_match is not None and not etags_match(if_match, current_etag):
        return Outcome.PRECONDITION_FAILED
    if (
        if_none_match is not None
        and method in ("PUT", "PATCH", "DELETE")
        and ("*" in _candidates(if_none_match) or etags_match(if_none_match, current_etag))
    ):
        return Outcome.PRECONDITION_FAILED
    return Outcome.PROCEED
