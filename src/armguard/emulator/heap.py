"""The emulator process's C allocator: large transient buffers go back to the system.

Requests carry bodies of up to megabytes (a 5 MB one is refused with 413 only once read), and
their parsing makes megabytes of short-lived objects. glibc serves a large block from its own
mapping only until the first such block is freed; then its threshold rises to that size and
later large blocks come from the heap, where the long-lived objects allocated between them
(Activity Log events, operations) pin the pages. The process's RSS then grows with the
traffic it has seen, not with the state it keeps: ~1 GB after 100,000 fuzz requests whose
state was a tenth of that. A fixed threshold keeps every block over 128 KB in a mapping of
its own, returned whole when freed; two arenas stop each worker thread from growing a heap
of its own; a lower trim threshold returns a freed heap top sooner.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_allocator"]

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD = 128 * 1024
"""Blocks of at least this many bytes get a mapping of their own (glibc's initial value)."""
TRIM_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Apply the settings above to this process's glibc allocator; False where there is no
    glibc (macOS, musl), which keeps its own behaviour."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    results = [
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        mallopt(_M_ARENA_MAX, ARENA_MAX),
    ]
    # mallopt returns 1 on success, 0 on error.
    return all(r == 1 for r in results)
