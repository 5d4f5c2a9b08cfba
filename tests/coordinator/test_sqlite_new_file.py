"""Many openers of one new SQLite file at the same moment: a worker pool's threads, or worker
processes started together by a script. Each must open the store, not fail on the file's
switch to WAL mode (SQLite refuses a second switcher at once, without its busy handler)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import tempfile
import threading
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from armguard.coordinator.model import JobSpec
from armguard.coordinator.sqlite_store import SqliteStore

ROUNDS = 40
OPENERS = 6
VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"


def _spec(who: str) -> JobSpec:
    return JobSpec(resource_id=VM, intent={"who": who}, writer=who, lock_keys=(VM.lower(),))


def _open_and_submit(path: Path, who: str) -> str | None:
    """The error an opener met, or None; every opener's submit must be kept."""
    try:
        store = SqliteStore(path)
        try:
            store.submit(_spec(who))
        finally:
            store.close()
    except Exception as exc:  # the assertion reports every opener's failure, not the first
        return f"{who}: {exc!r}"
    return None


def _verify(paths: list[Path], openers: int) -> None:
    for path in paths:
        store = SqliteStore(path)
        try:
            assert store.queue_depth() == openers, f"{path}: a submit was lost"
        finally:
            store.close()
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_opening_a_new_file_together_all_open_it() -> None:
    root = Path(tempfile.mkdtemp(prefix="armguard-newfile-"))
    paths = [root / f"{n}.db" for n in range(ROUNDS)]
    errors: list[str] = []
    for path in paths:
        start = threading.Barrier(OPENERS)

        def opener(n: int, path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            if (error := _open_and_submit(path, f"t{n}")) is not None:
                errors.append(error)

        threads = [threading.Thread(target=opener, args=(n,)) for n in range(OPENERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    _verify(paths, OPENERS)


def _process(paths: list[str], who: str, start: Barrier, out: str) -> None:
    errors = []
    for path in paths:
        start.wait(60)
        if (error := _open_and_submit(Path(path), who)) is not None:
            errors.append(error)
    Path(out).write_text("\n".join(errors))


def test_processes_opening_a_new_file_together_all_open_it() -> None:
    root = Path(tempfile.mkdtemp(prefix="armguard-newfile-"))
    paths = [root / f"{n}.db" for n in range(ROUNDS // 2)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [
        ctx.Process(
            target=_process, args=([str(p) for p in paths], f"p{n}", start, str(root / f"{n}.out"))
        )
        for n in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
    assert [p.exitcode for p in procs] == [0] * 4
    errors = [line for n in range(4) for line in (root / f"{n}.out").read_text().splitlines()]
    assert errors == []
    _verify(paths, 4)
