"""Turns: oldest first, all keys or none, on every backend the proxy offers (one process in
memory; SQLite and PostgreSQL shared by several proxies)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from armguard.clock import SystemClock
from armguard.proxy.sql_turns import open_turns
from armguard.proxy.turns import MemoryTurns, Ticket, TurnLost, Turns

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Turns]:
    kind = request.param
    url = request.getfixturevalue("pg_schema_url") if kind == "postgres" else None

    def open_(clock: object = None, ttl: float = 30.0) -> Turns:
        if kind == "memory":
            return MemoryTurns()
        where = url if url is not None else str(tmp_path / "turns.db")
        return open_turns(where, clock or SystemClock(), ttl=ttl)  # type: ignore[arg-type]

    return open_


_waits: dict[int, asyncio.Task[None]] = {}


@pytest.fixture(autouse=True)
def _fresh_waits() -> None:
    _waits.clear()


async def _granted(turns: Turns, ticket: Ticket, within: float = 0.5) -> bool:
    """Whether ``ticket`` is granted within ``within`` seconds. The wait goes on when it is
    not (cancelling it would give the ticket back)."""
    key = id(ticket)
    task = _waits.get(key)
    if task is None or (task.done() and task.exception() is not None):
        task = _waits[key] = asyncio.create_task(turns.wait(ticket))
    done, _ = await asyncio.wait({task}, timeout=within)
    return task in done and task.exception() is None


def test_overlapping_keys_wait_oldest_first(open_backend: Callable[..., Turns]) -> None:
    async def scenario() -> None:
        turns = open_backend()
        first = await turns.enqueue(("vnet",), "p")
        second = await turns.enqueue(("nic", "vnet"), "p")
        other = await turns.enqueue(("storage",), "p")
        assert await _granted(turns, first)
        assert await _granted(turns, other), "disjoint keys do not wait"
        assert not await _granted(turns, second, 0.2), "shares 'vnet' with an older holder"
        await turns.release(first)
        assert await _granted(turns, second)
        assert second.seq > first.seq, "tickets are fencing tokens: they only grow"
        await turns.close()

    asyncio.run(scenario())


def test_all_keys_or_none_so_no_deadlock(open_backend: Callable[..., Turns]) -> None:
    """Two writers needing {a, b} in opposite orders, and a third needing only b: granted
    by age over whole key sets, so the later two never hold part of what they need."""

    async def scenario() -> None:
        turns = open_backend()
        ab = await turns.enqueue(("a", "b"), "p")
        ba = await turns.enqueue(("b", "a"), "p")
        b = await turns.enqueue(("b",), "p")
        assert await _granted(turns, ab)
        assert not await _granted(turns, ba, 0.1)
        assert not await _granted(turns, b, 0.1), "a younger ticket never overtakes"
        await turns.release(ab)
        assert await _granted(turns, ba)
        assert not await _granted(turns, b, 0.1)
        await turns.release(ba)
        assert await _granted(turns, b)
        await turns.close()

    asyncio.run(scenario())


def test_a_cancelled_wait_gives_its_ticket_back(open_backend: Callable[..., Turns]) -> None:
    """A client that disconnects while queued must not keep later writers waiting."""

    async def scenario() -> None:
        turns = open_backend()
        holder = await turns.enqueue(("k",), "p")
        assert await _granted(turns, holder)
        quitter = await turns.enqueue(("k",), "p")
        later = await turns.enqueue(("k",), "p")
        task = asyncio.create_task(turns.wait(quitter))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await turns.release(holder)
        assert await _granted(turns, later), "the cancelled ticket no longer blocks"
        await turns.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_dead_proxys_ticket_stops_counting_at_its_lease(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A proxy killed with -9 never releases; its keys come free when its lease runs out,
    and a write it had not sent yet can no longer be sent under that ticket."""
    where = (
        request.getfixturevalue("pg_schema_url") if kind == "postgres" else str(tmp_path / "t.db")
    )

    async def scenario() -> None:
        dead = open_turns(where, SystemClock(), ttl=0.5)
        alive = open_turns(where, SystemClock(), ttl=30)
        held = await dead.enqueue(("k",), "dead")
        assert await _granted(dead, held)
        waiting = await alive.enqueue(("k",), "alive")
        assert not await _granted(alive, waiting, 0.2)
        await asyncio.sleep(0.6)  # the dead proxy's lease runs out on the database's clock
        assert await _granted(alive, waiting, 2.0)
        with pytest.raises(TurnLost):
            await dead.check(held)
        await dead.close()
        await alive.close()

    asyncio.run(scenario())
