"""Turns: writes whose lock keys overlap go one at a time, oldest first, all keys or none.

A write takes a *ticket* (a fencing token: tickets only grow) for all its keys at once, and is
granted when no older live ticket shares a key with it. Granting by age over whole key sets
cannot deadlock (nobody holds some keys while waiting for others) and cannot starve (a ticket
only ever waits for older ones). :class:`MemoryTurns` serves one proxy process;
:mod:`armguard.proxy.sql_turns` shares tickets between proxies through SQLite or PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MemoryTurns", "Ticket", "TurnLost", "Turns"]


class TurnLost(Exception):
    """The ticket expired (the proxy stalled past its lease) or was taken away: the write it
    guards must not be sent."""


@dataclass(eq=False)
class Ticket:
    seq: int
    """The fencing token: a later ticket always has a larger one."""
    keys: tuple[str, ...]
    owner: str
    granted: bool = False
    _ready: asyncio.Future[None] | None = field(default=None, repr=False)


class Turns(Protocol):
    async def enqueue(self, keys: tuple[str, ...], owner: str) -> Ticket:
        """Take a ticket for ``keys``; it waits behind every older live ticket sharing one."""
        ...

    async def wait(self, ticket: Ticket) -> None:
        """Return once ``ticket`` is granted. Cancelling the wait gives the ticket back."""
        ...

    async def check(self, ticket: Ticket) -> None:
        """Raise :class:`TurnLost` unless ``ticket`` still holds its keys (and renew it)."""
        ...

    async def release(self, ticket: Ticket) -> None:
        """Give the keys back (idempotent)."""
        ...

    def waiting(self) -> int:
        """Tickets taken by this process and not yet granted."""
        ...

    async def close(self) -> None: ...


class MemoryTurns:
    """Turns within one process: a queue of ticket numbers per key."""

    def __init__(self) -> None:
        self._seq = 0
        self._queues: dict[str, deque[int]] = {}
        self._tickets: dict[int, Ticket] = {}

    async def enqueue(self, keys: tuple[str, ...], owner: str) -> Ticket:
        self._seq += 1
        loop = asyncio.get_running_loop()
        ticket = Ticket(self._seq, tuple(sorted(set(keys))), owner, _ready=loop.create_future())
        self._tickets[ticket.seq] = ticket
        for key in ticket.keys:
            self._queues.setdefault(key, deque()).append(ticket.seq)
        self._grant(ticket)
        return ticket

    def _grant(self, ticket: Ticket) -> None:
        if ticket.granted or ticket.seq not in self._tickets:
            return
        if all(self._queues[k][0] == ticket.seq for k in ticket.keys):
            ticket.granted = True
            if ticket._ready is not None and not ticket._ready.done():
                ticket._ready.set_result(None)

    async def wait(self, ticket: Ticket) -> None:
        if ticket.granted:
            return
        assert ticket._ready is not None
        try:
            await asyncio.shield(ticket._ready)
        except asyncio.CancelledError:
            await self.release(ticket)
            raise

    async def check(self, ticket: Ticket) -> None:
        if not ticket.granted or ticket.seq not in self._tickets:
            raise TurnLost(f"ticket {ticket.seq} no longer holds its keys")

    async def release(self, ticket: Ticket) -> None:
        if self._tickets.pop(ticket.seq, None) is None:
            return
        heads: list[int] = []
        for key in ticket.keys:
            queue = self._queues[key]
            queue.remove(ticket.seq)
            if queue:
                heads.append(queue[0])
            else:
                del self._queues[key]
        for seq in heads:
            waiting = self._tickets.get(seq)
            if waiting is not None:
                self._grant(waiting)

    def waiting(self) -> int:
        return sum(1 for t in self._tickets.values() if not t.granted)

    async def close(self) -> None:
        for ticket in list(self._tickets.values()):
            if ticket._ready is not None and not ticket._ready.done():
                ticket._ready.cancel()
        self._tickets.clear()
        self._queues.clear()
