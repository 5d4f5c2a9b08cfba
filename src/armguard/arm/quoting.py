"""ARM's single-quoted literals, as OData ``$filter`` values and template expressions write
them: ``'it''s'`` is ``it's`` (a quote inside is doubled)."""

from __future__ import annotations

__all__ = ["scan_quoted"]


def scan_quoted(text: str, start: int) -> tuple[str, int] | None:
    """Read the literal whose opening quote is at ``text[start]``.

    Returns the unescaped value and the index just past the closing quote, or None when the
    literal is never closed (the caller words that error for its own language).
    """
    chunks: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        if text[i] == "'":
            if i + 1 < n and text[i + 1] == "'":
                chunks.append("'")
                i += 2
                continue
            return "".join(chunks), i + 1
        chunks.append(text[i])
        i += 1
    return None
