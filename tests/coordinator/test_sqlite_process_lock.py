"""The SQLite store's cross-process write lock (an ``flock`` on ``<file>-lock``): writers of
other processes queue on it instead of in SQLite's sleeping busy handler, a holder killed
with -9 blocks no one, and SQLite's own lock still decides against writers that skip it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from armguard.clock import ManualClock
from armguard.coordinator.model import JobResult, JobSpec, Outcome
from armguard.coordinator.sqlite_store import SqliteStore

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"

# A writer that takes the store's write lock (the sidecar, then SQLite's) and holds it until
# its stdin closes or it is killed.
_HOLDER = """
import sys
from armguard.clock import ManualClock
from armguard.coordinator.sqlite_store import SqliteStore

store = SqliteStore(sys.argv[1], clock=ManualClock())
with store._write() as tx:
    tx.rows("UPDATE counters SET value = value WHERE name = 'fence'")
    print("holding", flush=True)
    sys.stdin.read()
store.close()
"""


def _spec(name: str) -> JobSpec:
    rid = f"{VM}-{name}"
    return JobSpec(resource_id=rid, intent={"n": name}, writer=name, lock_keys=(rid.lower(),))


@pytest.fixture
def path() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="armguard-flock-")) / "q.db"
    SqliteStore(where, clock=ManualClock()).close()  # the file exists, in WAL mode
    yield where
    shutil.rmtree(where.parent, ignore_errors=True)


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _sidecar_taken(path: Path) -> bool:
    fd = os.open(f"{path}-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_writer_of_another_process_waits_on_the_sidecar_and_goes_on_when_it_is_free(
    path: Path,
) -> None:
    store = SqliteStore(path, clock=ManualClock())  # opening a store writes too
    holder = _holder(path)
    assert _sidecar_taken(path)
    done = threading.Event()
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            store.submit(_spec("waiting"))
        except BaseException as exc:
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=submit)
    thread.start()
    # Still waiting while the holder lives: nothing is written behind its back.
    assert not done.wait(0.2)
    assert store.queue_depth() == 0
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(30) == 0
    assert holder.stdout is not None
    holder.stdout.close()
    thread.join(30)
    assert done.is_set()
    assert errors == []
    assert store.queue_depth() == 1
    assert not _sidecar_taken(path), "the lock was left taken after the write"
    store.close()


def test_a_holder_killed_with_minus_9_blocks_no_one(path: Path) -> None:
    holder = _holder(path)
    assert _sidecar_taken(path)
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(30) == -signal.SIGKILL
    for pipe in (holder.stdin, holder.stdout):
        assert pipe is not None
        pipe.close()
    store = SqliteStore(path, clock=ManualClock())
    job = store.submit(_spec("after-kill"))
    lease = store.claim("w", ttl=60)
    assert lease is not None
    assert [j.id for j in lease.jobs] == [job.id]
    store.complete(lease, [JobResult(job.id, Outcome.APPLIED)])
    assert store.get(job.id) is not None
    store.close()


def test_sqlite_lock_still_decides_against_a_writer_that_skips_the_sidecar(path: Path) -> None:
    """The ``sqlite3`` shell or an older armguard takes SQLite's lock alone: a store write
    then waits in SQLite's busy handler with the sidecar held, and goes on once it is free."""
    store = SqliteStore(path, clock=ManualClock())
    outsider = sqlite3.connect(path, isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")
    done = threading.Event()

    def submit() -> None:
        store.submit(_spec("behind-outsider"))
        done.set()

    thread = threading.Thread(target=submit)
    thread.start()
    assert not done.wait(0.2)
    assert _sidecar_taken(path), "the store's writer holds the sidecar while SQLite makes it wait"
    outsider.execute("ROLLBACK")
    outsider.close()
    thread.join(30)
    assert done.is_set()
    assert store.queue_depth() == 1
    store.close()


def test_a_forked_child_takes_the_lock_on_its_own_descriptor(path: Path) -> None:
    """An ``flock`` belongs to the open file description, which ``fork`` shares: a child that
    reused its parent's descriptor would hold the lock for its parent too."""
    store = SqliteStore(path, clock=ManualClock())
    store.submit(_spec("before-fork"))  # the parent has opened its descriptor
    parent_fd = store._file._lock_fd
    assert parent_fd is not None
    held_r, held_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold the lock until the parent says so
        try:
            child = SqliteStore(path, clock=ManualClock())
            with child._write():
                os.write(held_w, b"h")
                os.read(go_r, 1)
            child.close()
        finally:
            os._exit(0)
    try:
        assert os.read(held_r, 1) == b"h"
        with pytest.raises(BlockingIOError):
            fcntl.flock(parent_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(go_w, b"g")
    finally:
        os.waitpid(pid, 0)
        for fd in (held_r, held_w, go_r, go_w):
            os.close(fd)
    store.submit(_spec("after"))
    assert store.queue_depth() == 2
    store.close()
