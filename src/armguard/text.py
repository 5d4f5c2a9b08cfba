"""Shortening text that people read: reasons, ARM messages, table cells."""

from __future__ import annotations

__all__ = ["clip"]


def clip(text: str, limit: int) -> str:
    """``text`` whole up to ``limit`` characters; past that, cut at a space when there is one in
    the second half, so a resource ID is shown whole or not at all, and ended with an ellipsis
    so nobody takes the cut text for the whole."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"
