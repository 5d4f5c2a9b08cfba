"""The emulator process's allocator: with ``PYTHONMALLOC=malloc`` a trim gives the free pages
between long-lived objects back to the system, which CPython's own arenas cannot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHURN = """
from armguard.emulator.heap import on_system_allocator, trim, tune_allocator

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

tune_allocator()
kept, garbage = [], []
# A request's garbage with the odd object that outlives it, as Activity Log events do.
for n in range(300_000):
    garbage.append("x" * 200 + str(n))
    if n % 200 == 0:
        kept.append("y" * 200 + str(n))
del garbage
before = rss_kb()
trimmed = trim()
print(on_system_allocator(), trimmed, before, rss_kb(), len(kept))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_trim_on_the_system_allocator_returns_the_pages_between_live_objects() -> None:
    env = {**os.environ, "PYTHONMALLOC": "malloc"}
    done = subprocess.run(
        [sys.executable, "-c", CHURN],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    system, trimmed, before, after, kept = done.stdout.split()
    assert (system, trimmed, kept) == ("True", "True", "1500")
    # ~70 MB of strings were freed around 1,500 survivors: most of it goes back.
    assert int(before) - int(after) > 40_000, (before, after)
