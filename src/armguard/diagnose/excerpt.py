"""The parts of a long log where the errors are, read as a stream in bounded memory.

A CI log is megabytes of progress lines around a few kilobytes of error. ``excerpt`` reads it
line by line and keeps the start, the end, and the lines between that look like errors (with
a little context before and the lines after, where a JSON body or a stack trace continues),
each part capped, so a 10 MB or a 10 GB log costs the same memory and the parser reads under a
megabyte.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Excerpt", "excerpt"]

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 256 * 1024
MIDDLE_BYTES = 256 * 1024
"""Together under the parser's 1 MB window, so none of what is kept is cut again."""
MAX_LINE = 64 * 1024
"""A longer line (a minified JSON body) is read in pieces of this size."""
_BEFORE = 3
_AFTER = 40
"""Lines kept around an error line: its headline before, its body or stack trace after."""

# Error words, but not the counts that every build line prints ("0 errors", "0 failed"). Lines
# are lower-cased first; a plain alternation of literals rules most lines out quickly, and
# only the few left meet the precise pattern (six times faster on a build log).
_CANDIDATE = re.compile(
    rb"error|exception|fail|denied|forbidden|unauthori|throttl|conflict|not found|timed out"
    rb"|deadline|status|code|\) "
)
_ERROR_LINE = re.compile(
    rb"\berror\b|exception|\bfail(?:ed|ure|s)?\b|denied|forbidden|unauthori[sz]ed|throttl"
    rb"|\bconflict\b|not found|timed out|deadline exceeded"
    rb"|status(?:\s*code)?\s*[=:]?\s*[45]\d\d\b|\b[45]\d\d (?:\(|[a-z])|[\"']code[\"']\s*:"
    rb"|\bcode=\"|\(\w+\) "
)


def _is_error_line(line: bytes) -> bool:
    low = line.lower().replace(b" 0 errors", b"").replace(b" 0 failed", b"")
    return _CANDIDATE.search(low) is not None and _ERROR_LINE.search(low) is not None


@dataclass(frozen=True)
class Excerpt:
    data: bytes
    """The start, the error lines from the middle and the end, with a marker at each gap."""
    total_bytes: int
    kept_middle_lines: int
    binary: bool
    """A NUL byte was seen: the input is not text."""

    @property
    def cut(self) -> bool:
        return len(self.data) < self.total_bytes


def excerpt(stream: BinaryIO) -> Excerpt:
    head = bytearray()
    tail: deque[bytes] = deque()
    tail_size = 0
    middle: list[bytes] = []
    middle_size = 0
    kept_lines = 0
    before: deque[bytes] = deque(maxlen=_BEFORE)
    after = 0
    total = 0
    binary = False
    gap = False
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            break
        total += len(line)
        binary = binary or b"\x00" in line
        if len(head) < HEAD_BYTES:
            head += line
            continue
        tail.append(line)
        tail_size += len(line)
        while tail_size > TAIL_BYTES:
            old = tail.popleft()
            tail_size -= len(old)
            # A line leaves the tail window: it is in the middle of the log now.
            is_error = _is_error_line(old)
            if middle_size < MIDDLE_BYTES and (after > 0 or is_error):
                if after == 0:
                    if gap:
                        middle.append(b"\n...\n")
                    middle.extend(before)
                    middle_size += sum(len(b) for b in before)
                    before.clear()
                after = _AFTER if is_error else after - 1
                middle.append(old)
                middle_size += len(old)
                kept_lines += 1
                gap = False
            else:
                before.append(old)
                gap = True
    parts = [bytes(head)]
    if middle:
        parts.extend(middle)
    if tail:
        if gap or middle or total > len(head) + tail_size:
            parts.append(b"\n...\n")
        parts.extend(tail)
    return Excerpt(b"".join(parts), total, kept_lines, binary)
