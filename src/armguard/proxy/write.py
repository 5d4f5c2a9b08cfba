"""One proxied write: wait for its turn, judge a blind PUT, send, absorb refusals caused by
other writers, follow the accepted operation to its end, give the keys back.

Every step is recorded as a job event and counted. The client's answer is ARM's own answer
(links rewritten onto the proxy), except where the proxy decided for it: a 412 for a blind PUT
that would overwrite what its caller never read (``guard``/``merge``), a 409 when its turn did
not come within ``queue_max`` (nothing was sent), a 502/504 when the upstream did not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.arm.urls import redact_url
from armguard.clock import Clock
from armguard.coordinator.backoff import Backoff, RetryBudget
from armguard.coordinator.scopes import learned_dependency
from armguard.proxy.absorb import absorbable, classify_answer
from armguard.proxy.errors import arm_error
from armguard.proxy.follow import follow_operation, operation_url, retry_after_seconds
from armguard.proxy.guard import Mode, Verdict, judge_blind_put
from armguard.proxy.record import EventLog, ProxyMetrics
from armguard.proxy.rewrite import URL_HEADERS, Origins, origin_of
from armguard.proxy.seen import Caller, SeenVersions, caller_of_headers
from armguard.proxy.settings import ProxySettings
from armguard.proxy.target import WriteTarget
from armguard.proxy.turns import Ticket, TurnLost, Turns
from armguard.proxy.upstream import (
    HOP_BY_HOP,
    Answer,
    Unreachable,
    Upstream,
    auth_headers,
    wire_path,
)
from armguard.text import clip

__all__ = ["Proxy"]

_MERGE_ROUNDS = 3
_RAW_DROP = HOP_BY_HOP - {"content-encoding", "content-length"}


def _replace_header(
    headers: Iterable[tuple[str, str]], name: str, value: str | None
) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return out


class Proxy:
    """The proxy's state and its write path; shared by every request of one process."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        upstream: Upstream,
        turns: Turns,
        clock: Clock,
        public_url: str,
        events: EventLog,
        metrics: ProxyMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.turns = turns
        self.clock = clock
        self.public_url = public_url
        self.origins = Origins(settings.upstream, public_url)
        self.events = events
        self.metrics = metrics or ProxyMetrics()
        self.seen = SeenVersions()
        self.rng = rng or random.Random()
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, self.rng)
        self.budget = RetryBudget(settings.retry_ratio, settings.retry_floor, clock=clock)
        self.proxy_id = f"proxy-{uuid.uuid4().hex[:8]}"
        self._learned: dict[str, set[str]] = {}
        self._holding: set[asyncio.Task[None]] = set()

    # --- answers -------------------------------------------------------------------------

    def public_headers(
        self, headers: Iterable[tuple[str, str]], *, raw: bool = False
    ) -> dict[str, str]:
        drop = _RAW_DROP if raw else HOP_BY_HOP
        out: dict[str, str] = {}
        for name, value in headers:
            low = name.lower()
            if low in drop:
                continue
            out[name] = self.origins.to_public(value) if low in URL_HEADERS else value
        return out

    def respond(self, method: str, answer: Answer) -> Response:
        self.metrics.requests.labels(method.upper(), f"{answer.status // 100}xx").inc()
        return Response(
            self.origins.body_to_public(answer.body),
            status_code=answer.status,
            headers=self.public_headers(answer.headers),
        )

    def unreachable(self, err: Unreachable, *, write: bool = False) -> Response:
        where = self.settings.upstream
        if write and err.sent:
            return arm_error(
                504,
                "GatewayTimeout",
                f"The upstream ARM endpoint {where} did not answer this write ({err}). Its "
                "outcome is unknown; the proxy did not resend it. Read the resource to see "
                "whether it was applied before writing again.",
            )
        return arm_error(
            502,
            "BadGateway",
            f"The armguard proxy could not reach the upstream ARM endpoint {where} ({err}). "
            "Nothing was sent.",
            headers={"Retry-After": "5"},
        )

    # --- memory of reads -------------------------------------------------------------------

    def remember_read(self, caller: Caller, path: str, answer: Answer) -> None:
        # With lost-update checks off nothing ever asks what a caller read: skip the parse.
        if answer.status != 200 or self.settings.lost_updates is Mode.OFF:
            return
        try:
            rid = parse_resource_id(path)
        except InvalidResourceId:
            return
        if not rid.is_resource:
            return
        doc = answer.json()
        if not isinstance(doc, Mapping) or ("value" in doc and "id" not in doc):
            return
        self.seen.remember(caller, rid.key, answer.etag, doc, len(answer.body))

    def learned_for(self, keys: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for key in keys:
            out |= self._learned.get(key, set())
        return out

    def _learn(self, keys: Iterable[str], other: str) -> None:
        for key in keys:
            if key != other:
                self._learned.setdefault(key, set()).add(other)
                self._learned.setdefault(other, set()).add(key)

    # --- the write path ----------------------------------------------------------------------

    async def write(self, request: Request, target: WriteTarget, body: bytes) -> Response | None:
        caller = caller_of_headers(request.headers.get("authorization"))
        job = f"{self.proxy_id}-{uuid.uuid4().hex[:12]}"
        rid = target.resource.format()
        emit = partial(self.events.emit, job, rid, caller.name)
        emit("submitted", verb=target.verb, detail={"keys": list(target.keys), "proxy": True})
        ticket = await self.turns.enqueue(target.keys, self.proxy_id)
        started = self.clock.monotonic()
        self.metrics.queue_depth.set(self.turns.waiting() + 1)
        outcome = await self._wait_turn(request, ticket)
        self.metrics.queue_depth.set(self.turns.waiting())
        if outcome == "disconnected":
            emit("released", message="the client disconnected while queued; nothing was sent")
            return None
        if outcome == "timeout":
            emit("failed", kind="operation_in_progress", message="its turn did not come in time")
            return arm_error(
                409,
                "AnotherOperationInProgress",
                f"Earlier writes to '{rid}' or a resource it depends on are still in progress "
                f"through the armguard proxy after {self.settings.queue_max:g} s. Nothing was "
                "sent; retry later.",
                headers={"Retry-After": "10"},
            )
        waited = self.clock.monotonic() - started
        self.metrics.wait_seconds.observe(waited)
        emit("claimed", fence=ticket.seq, delay=round(waited, 6))
        heartbeat = self._heartbeat(ticket)
        handed_over = False
        try:
            answer, response = await self._send(
                request=request, target=target, body=body, caller=caller, emit=emit, ticket=ticket
            )
            if response is not None:
                return response
            assert answer is not None
            if 200 <= answer.status < 300:
                self.seen.wrote(caller, target.resource.key)
                if target.method in {"PUT", "PATCH"}:
                    self.remember_read(caller, request.url.path, answer)
            url = operation_url(answer)
            if url is not None and origin_of(url) == self.upstream.origin:
                task = asyncio.create_task(
                    self._follow_then_release(
                        request=request,
                        answer=answer,
                        url=url,
                        ticket=ticket,
                        heartbeat=heartbeat,
                        emit=emit,
                    )
                )
                self._holding.add(task)
                task.add_done_callback(self._holding.discard)
                handed_over = True
            else:
                self._ended(emit, answer)
            return self.respond(request.method, answer)
        except TurnLost as err:
            emit("lease_lost", fence=ticket.seq, message=str(err))
            return arm_error(
                503,
                "ServiceUnavailable",
                "The armguard proxy lost this write's turn before sending it (its lease "
                "expired). Nothing was sent; retry.",
                headers={"Retry-After": "1"},
            )
        except Unreachable as err:
            emit("failed", kind="transient", message=clip(str(err), 2000))
            return self.unreachable(err, write=True)
        finally:
            if not handed_over:
                heartbeat.cancel()
                await self.turns.release(ticket)
                emit("released", fence=ticket.seq)

    def _ended(self, emit: Any, answer: Answer) -> None:
        if answer.status < 400:
            emit("applied", status=answer.status)
        else:
            c = classify_answer(answer)
            emit(
                "failed",
                kind=c.kind.value,
                status=answer.status,
                code=c.code,
                message=clip(c.message, 2000),
            )

    def _heartbeat(self, ticket: Ticket) -> asyncio.Task[None]:
        ttl = getattr(self.turns, "ttl", None)

        async def beat() -> None:
            if not ttl:
                return
            while True:
                await self.clock.asleep(ttl / 3)
                try:
                    await self.turns.check(ticket)
                except TurnLost:
                    return

        return asyncio.create_task(beat())

    async def _wait_turn(self, request: Request, ticket: Ticket) -> str:
        if ticket.granted:
            return "granted"
        waiter = asyncio.create_task(self.turns.wait(ticket))
        gone = asyncio.create_task(self._disconnected(request))
        late = asyncio.create_task(self.clock.asleep(self.settings.queue_max))
        try:
            done, _ = await asyncio.wait({waiter, gone, late}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, late):
                task.cancel()
        if waiter in done and waiter.exception() is None:
            return "granted"
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await waiter
        await self.turns.release(ticket)
        return "disconnected" if gone in done else "timeout"

    @staticmethod
    async def _disconnected(request: Request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    async def _send(
        self,
        *,
        request: Request,
        target: WriteTarget,
        body: bytes,
        caller: Caller,
        emit: Any,
        ticket: Ticket,
    ) -> tuple[Answer | None, Response | None]:
        headers = list(request.headers.items())
        path_qs = wire_path(request.scope)
        mode = self.settings.lost_updates
        blind = (
            target.method == "PUT"
            and mode is not Mode.OFF
            and "if-match" not in request.headers
            and "if-none-match" not in request.headers
        )
        for _ in range(_MERGE_ROUNDS):
            send_headers, send_body = headers, body
            verdict: Verdict | None = None
            if blind:
                verdict = await self._judge(request, target, body, caller)
                if verdict.action == "refuse":
                    self.metrics.lost_updates.labels("refused").inc()
                    emit(
                        "conflict",
                        kind="stale_version",
                        status=412,
                        code="PreconditionFailed",
                        message=verdict.reason,
                        detail={
                            "lostUpdate": "refused",
                            "conflicts": [c.to_json() for c in verdict.conflicts],
                        },
                    )
                    return None, self._refusal(target, caller, verdict)
                if verdict.action in ("lost", "unread"):
                    self.metrics.lost_updates.labels(
                        "warned" if verdict.action == "lost" else "unread"
                    ).inc()
                    emit(
                        "conflict",
                        kind="stale_version",
                        message=verdict.reason,
                        detail={"lostUpdate": verdict.action},
                    )
                if verdict.if_match is not None:
                    send_headers = _replace_header(headers, "If-Match", verdict.if_match)
                if verdict.body is not None:
                    send_body = json.dumps(verdict.body, separators=(",", ":")).encode()
                    send_headers = _replace_header(send_headers, "Content-Type", "application/json")
                if verdict.action == "merge":
                    self.metrics.lost_updates.labels("merged").inc()
                    emit("rebased", etag_live=verdict.if_match, detail={"lostUpdate": "merged"})
                elif verdict.action == "guard" and verdict.reason.startswith("replaces"):
                    self.metrics.lost_updates.labels("guarded").inc()
                    emit(
                        "conflict",
                        kind="stale_version",
                        etag_sent=verdict.if_match,
                        message=verdict.reason,
                        detail={"lostUpdate": "guarded"},
                    )
            answer = await self._send_absorbing(
                target=target,
                path_qs=path_qs,
                headers=send_headers,
                body=send_body,
                emit=emit,
                ticket=ticket,
                request=request,
            )
            if not (verdict is not None and verdict.action == "merge" and answer.status == 412):
                return answer, None
            # Someone outside the proxy wrote between the proxy's read and its merge: merge
            # again on what is live now.
        return answer, None

    async def _judge(
        self, request: Request, target: WriteTarget, body: bytes, caller: Caller
    ) -> Verdict:
        version = request.query_params.get("api-version")
        path = wire_path(request.scope, query=False) + (
            f"?api-version={quote(version)}" if version else ""
        )
        try:
            live = await self.upstream.send("GET", path, auth_headers(request.headers.items()))
        except Unreachable:
            return Verdict("send", "the live version could not be read")
        if live.status == 404:
            return judge_blind_put(self.settings.lost_updates, None, None, None, None)
        doc = live.json()
        if live.status != 200 or not isinstance(doc, Mapping):
            return Verdict("send", f"the live version could not be read ({live.status})")
        seen = self.seen.get(caller, target.resource.key)
        sent = json.loads(body) if body.strip() else None
        sent_doc = sent if isinstance(sent, Mapping) else None
        return judge_blind_put(self.settings.lost_updates, seen, doc, live.etag, sent_doc)

    def _refusal(self, target: WriteTarget, caller: Caller, verdict: Verdict) -> Response:
        rid = target.resource.format()
        other = self.seen.last_writer(target.resource.key)
        who = (
            f"last written through the proxy by '{other}'"
            if other and other != caller.name
            else "changed by a writer outside the proxy"
            if other is None
            else "changed since"
        )
        details = [
            {
                "code": "ConflictingField",
                "target": c.to_json()["path"],
                "message": (
                    f"'{c.to_json()['path']}': you read {json.dumps(c.to_json()['baseline'])}, "
                    f"you send {json.dumps(c.to_json()['yours'])}, it is now "
                    f"{json.dumps(c.to_json()['theirs'])}."
                ),
            }
            for c in verdict.conflicts
        ]
        fields = ", ".join(d["target"] for d in details)
        message = (
            f"The resource '{rid}' was {who} after this caller last read it, and this PUT "
            "(sent without If-Match) would overwrite that change"
            + (f" in {fields}" if fields else "")
            + ". Read the resource again and reapply your change. (armguard proxy, "
            f"--lost-updates {self.settings.lost_updates.value})"
        )
        return arm_error(412, "PreconditionFailed", message, details=details)

    async def _send_absorbing(
        self,
        *,
        target: WriteTarget,
        path_qs: str,
        headers: list[tuple[str, str]],
        body: bytes,
        emit: Any,
        ticket: Ticket,
        request: Request,
    ) -> Answer:
        deadline = self.clock.monotonic() + self.settings.wait_max
        self.budget.record_work()
        attempt = 0
        if_match = next((v for k, v in headers if k.lower() == "if-match"), None)
        while True:
            await self.turns.check(ticket)
            emit("write", attempt=attempt, fence=ticket.seq, verb=target.verb, etag_sent=if_match)
            self.metrics.writes.labels(target.method).inc()
            answer = await self.upstream.send(target.method, path_qs, headers, body)
            if answer.status < 400:
                return answer
            c = classify_answer(answer)
            other = learned_dependency(target.resource, c)
            if other is not None:
                self._learn(target.keys, other)
            if not absorbable(answer, c):
                return answer
            if self.clock.monotonic() >= deadline or not self.budget.try_spend():
                self.metrics.passed_after_wait.labels(c.kind.value).inc()
                emit(
                    "conflict",
                    attempt=attempt,
                    kind=c.kind.value,
                    status=answer.status,
                    code=c.code,
                    message=clip(c.message, 2000),
                    detail={"passedThrough": True},
                )
                return answer
            self.metrics.absorbed.labels(c.kind.value).inc()
            emit(
                "conflict",
                attempt=attempt,
                kind=c.kind.value,
                status=answer.status,
                code=c.code,
                message=clip(c.message, 2000),
                operation_url=redact_url(c.operation_url) if c.operation_url else None,
            )
            named = c.operation_url
            if named is not None and origin_of(named) == self.upstream.origin:
                emit("waiting", attempt=attempt, operation_url=redact_url(named))
                await follow_operation(
                    self.upstream,
                    named,
                    via_status_url=True,
                    headers=auth_headers(request.headers.items()),
                    clock=self.clock,
                    first_wait=retry_after_seconds(answer) or 0.0,
                    deadline=deadline,
                    backoff=self.backoff,
                )
                # Writers woken by the same end must not resend in lockstep.
                await self.clock.asleep(self.rng.uniform(0.0, min(1.0, self.backoff.base)))
            else:
                delay = min(
                    self.backoff.delay(attempt, c.retry_after),
                    max(0.0, deadline - self.clock.monotonic()),
                )
                emit("backoff", attempt=attempt, delay=round(delay, 3))
                await self.clock.asleep(delay)
            attempt += 1

    async def _follow_then_release(
        self,
        *,
        request: Request,
        answer: Answer,
        url: str,
        ticket: Ticket,
        heartbeat: asyncio.Task[None],
        emit: Any,
    ) -> None:
        try:
            emit("waiting", operation_url=redact_url(url))
            status = await follow_operation(
                self.upstream,
                url,
                via_status_url=answer.header("azure-asyncoperation") is not None,
                headers=auth_headers(request.headers.items()),
                clock=self.clock,
                first_wait=retry_after_seconds(answer),
                deadline=self.clock.monotonic() + self.settings.follow_max,
                backoff=self.backoff,
            )
            if status.lower() == "succeeded":
                emit("applied", status=answer.status, detail={"operation": status})
            else:
                emit(
                    "failed",
                    status=answer.status,
                    message=f"operation ended {status}",
                    detail={"operation": status},
                )
        finally:
            heartbeat.cancel()
            await self.turns.release(ticket)
            emit("released", fence=ticket.seq)

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop following operations (their tickets are released) and close the upstream."""
        tasks = list(self._holding)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.upstream.aclose()
        await self.turns.close()
        self.events.close()
