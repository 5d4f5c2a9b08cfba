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

What is left after hostile traffic is CPython's own small-object allocator (pymalloc): it holds
memory in 1 MB arenas and returns one only once every object in it is gone, so the few objects
that outlive a request (an Activity Log event, a settled operation, a cache entry) pin arenas
full of free space. 95,000 malformed requests into a fuzz run, a process held 308 arenas with
129 MB of objects and 138 MB of free pools in them. Run with ``PYTHONMALLOC=malloc`` every
object comes from glibc instead, which can give back the free pages between live blocks;
:func:`start_trimmer` has it do so every second. That is not the default: glibc is slower than pymalloc for small objects and
spends more bytes on each (measured in docs/benchmarks.md and docs/reliability.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, cast

__all__ = ["TRIM_EVERY", "on_system_allocator", "start_trimmer", "trim", "tune_allocator"]

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD = 128 * 1024
"""Blocks of at least this many bytes get a mapping of their own (glibc's initial value)."""
TRIM_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def _glibc(function: str) -> Any:
    """glibc's ``function`` (a ctypes function), or None where there is no glibc (macOS,
    musl), which keeps its own behaviour."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def tune_allocator() -> bool:
    """Apply the settings above to this process's glibc allocator; False where there is no
    glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
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


TRIM_EVERY = 1.0
"""Seconds between two returns of glibc's free pages to the system."""


def on_system_allocator() -> bool:
    """Whether CPython allocates every object with the C allocator (``PYTHONMALLOC=malloc``)."""
    return os.environ.get("PYTHONMALLOC", "").startswith("malloc")


def _malloc_trim() -> Callable[[int], int] | None:
    found = _glibc("malloc_trim")
    if found is None:
        return None
    found.argtypes = [ctypes.c_size_t]
    found.restype = ctypes.c_int
    return cast("Callable[[int], int]", found)


def trim() -> bool:
    """Give glibc's free pages back to the system now; False where there is no glibc."""
    call = _malloc_trim()
    if call is None:
        return False
    call(0)
    return True


def start_trimmer(every: float = TRIM_EVERY) -> bool:
    """Call :func:`trim` every ``every`` seconds, for the process's lifetime, from a daemon
    thread (``malloc_trim`` runs without the GIL); False where there is no glibc."""
    call = _malloc_trim()
    if call is None:
        return False

    def run() -> None:
        while True:
            time.sleep(every)
            call(0)

    threading.Thread(target=run, name="armguard-malloc-trim", daemon=True).start()
    return True
