"""Step 4: acting on a classified refusal, and the declared transitions it may need.

``stale_version`` → the next round re-reads and rebases (the failed token and body are never
resent); ``operation_in_progress`` → wait on the named status URL or the provisioningState,
then next round; ``state_prerequisite`` → run the transition the batch's intents declare
(resize: deallocate → resize → start), planned for the batch as a whole, so a tag riding with
a resize never fails it; ``locked`` → blocked; ``throttled``/``transient`` → jittered backoff
inside the worker's retry budget; anything else → failed with kind and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from armguard.arm.classify import Classification, ConflictKind
from armguard.arm.ids import ResourceId
from armguard.arm.states import is_terminal
from armguard.arm.urls import redact_url
from armguard.coordinator.gates import (
    GateFailed,
    GateTimeout,
    read_instance_view,
    wait_for_operation,
    wait_for_power_state,
    wait_for_provisioning,
    wait_for_settled_power,
)
from armguard.coordinator.intents import ActionIntent, live_power_state
from armguard.coordinator.model import Job, Outcome
from armguard.coordinator.scopes import learned_dependency
from armguard.coordinator.write.items import Item, norm_etag, provisioning_state
from armguard.coordinator.write.session import Finish, Session, clip
from armguard.events import EventType

__all__ = ["Recovery"]

# A VM that is starting counts as running for "start it again after the resize".
_RUNNING_STATES = frozenset({"running", "starting"})
_POWER_TARGET = {"deallocate": "deallocated", "start": "running", "powerOff": "stopped"}
# In a batch's set of prerequisites run: the power state was waited out once already.
_POWER_SETTLE = "power state settled"


def _power_actions(items: Sequence[Item]) -> bool:
    return any(isinstance(i.intent, ActionIntent) and i.intent.power_result for i in items)


class Recovery:
    def __init__(self, session: Session) -> None:
        self.s = session

    def recover(
        self,
        rid: ResourceId,
        api: str,
        items: Sequence[Item],
        c: Classification,
        prerequisites_run: set[str],
    ) -> bool:
        """Act on a classified failure; True if a VM was deallocated and must be started after."""
        kind = c.kind
        if kind is ConflictKind.STALE_VERSION:
            return False
        if kind is ConflictKind.OPERATION_IN_PROGRESS:
            self.wait_in_progress(rid, api, items, c)
            return False
        if kind is ConflictKind.STATE_PREREQUISITE:
            return self._prerequisite(rid, api, items, c, prerequisites_run)
        if kind is ConflictKind.LOCKED:
            scopes = ", ".join(c.locked_scopes) or "a parent scope"
            raise Finish(
                Outcome.BLOCKED,
                kind,
                f"a management lock on {scopes} blocks this write; a person must decide "
                f"({c.code}: {clip(c.message)})",
                {"locked_scopes": list(c.locked_scopes)},
            )
        if kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
            self.s.backoff_or_finish([i.job for i in items], c)
            return False
        raise Finish(Outcome.FAILED, kind, f"{c.reason} ({c.code or c.status}: {clip(c.message)})")

    # -- someone else's operation ---------------------------------------------------------------

    def wait_in_progress(
        self, rid: ResourceId, api: str, items: Sequence[Item], c: Classification
    ) -> None:
        s = self.s
        jobs = [i.job for i in items]
        other = learned_dependency(rid, c)
        if other is not None:
            s.store.learn_scope(rid.key, other, f"{c.code or 'conflict'}: {clip(c.message)}")
        try:
            if c.operation_url and self._follow_named(jobs, c):
                return
            self._wait_unnamed(rid, api, jobs, c)
        except GateFailed as failed:
            cls = failed.response.classification()
            if cls.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                s.backoff_or_finish(jobs, cls)
            elif cls.kind is not ConflictKind.NOT_FOUND:
                raise Finish(
                    Outcome.FAILED,
                    cls.kind,
                    f"could not watch the blocking operation: {cls.reason}",
                ) from failed
        except GateTimeout as timeout:
            raise Finish(
                Outcome.FAILED, ConflictKind.OPERATION_IN_PROGRESS, str(timeout)
            ) from timeout

    def _follow_named(self, jobs: Sequence[Job], c: Classification) -> bool:
        """Poll the operation ARM named to its end (or until it is gone); False if its status
        cannot be read (not ours to read, or on a host armguard sends no token to), so the
        caller watches the resource instead. Throttling and transient failures propagate as
        GateFailed."""
        s = self.s
        assert c.operation_url is not None
        s.emit(
            EventType.WAITING,
            jobs,
            operation_url=redact_url(c.operation_url),
            detail={"on": "named operation"},
        )
        if c.retry_after:
            # The refusal said when to look again; the first poll honours it too.
            s.pacer.pause(max(1.0, c.retry_after))
        try:
            wait_for_operation(s.counted(), c.operation_url, s.pacer)
        except GateFailed as failed:
            kind = failed.response.classification().kind
            if kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                raise
            return kind is ConflictKind.NOT_FOUND
        return True

    def _wait_unnamed(
        self, rid: ResourceId, api: str, jobs: Sequence[Job], c: Classification
    ) -> None:
        """ARM named no operation: gate on the target's own provisioningState if it is the one
        busy; otherwise a dependent resource holds it and nothing observable says when it is
        done, so back off with jitter (bounded by max_rounds) instead of retrying at once."""
        s = self.s
        probe = s.counted().request("GET", rid.format(), api_version=api)
        state = (
            provisioning_state(probe.body) if probe.ok and isinstance(probe.body, dict) else None
        )
        if state is not None and not is_terminal(state):
            s.emit(EventType.WAITING, jobs, detail={"on": "provisioningState", "state": state})
            wait_for_provisioning(s.counted(), rid.format(), api, s.pacer, first=probe)
            return
        delay = s.backoff.delay(s.round - 1, c.retry_after)
        s.emit(
            EventType.BACKOFF,
            jobs,
            kind=str(c.kind),
            delay=round(delay, 3),
            detail={"why": "a dependent resource is busy and ARM named no operation to follow"},
        )
        s.pacer.pause(delay)

    # -- prerequisites and transitions ------------------------------------------------------------

    def _prerequisite(
        self, rid: ResourceId, api: str, items: Sequence[Item], c: Classification, done: set[str]
    ) -> bool:
        needed = c.prerequisite or "unknown"
        # The write is the batch's: one intent declaring the transition carries the others
        # (a tag riding with a resize), which would succeed alone and must not fail with it.
        plans = [p for i in items if (p := i.intent.prerequisite(needed))]
        if not plans and _POWER_SETTLE not in done and _power_actions(items):
            # A power action refused for the VM's power state ("… either deallocated or
            # marked to be deallocated"): the VM is not in the state the job decided on. Wait
            # until it arrives somewhere, then decide again: a deallocated VM already
            # satisfies a powerOff, one running again gets it.
            done.add(_POWER_SETTLE)
            self._settle_power(rid, api, items, c)
            return False
        if not plans or needed in done:
            raise Finish(
                Outcome.FAILED,
                ConflictKind.STATE_PREREQUISITE,
                f"ARM requires '{needed}' first and no intent of this write declares that "
                f"transition ({c.code}: {clip(c.message)})",
            )
        done.add(needed)
        was_running = False
        if needed == "deallocate":
            try:
                view = read_instance_view(self.s.counted(), rid.format(), api)
            except GateFailed as failed:
                view = failed.response
            state = (
                live_power_state({"properties": {"instanceView": view.body}}) if view.ok else None
            )
            was_running = state in _RUNNING_STATES
        for action in dict.fromkeys(a for p in plans for a in p):
            restore = "running" if was_running and action == "deallocate" else None
            self.transition(rid, api, items, action, _POWER_TARGET.get(action), restore=restore)
        return was_running

    def _settle_power(
        self, rid: ResourceId, api: str, items: Sequence[Item], c: Classification
    ) -> None:
        s = self.s
        jobs = [i.job for i in items]
        s.emit(
            EventType.WAITING,
            jobs,
            detail={"on": "powerState", "until": "settled", "refused": c.code or c.status},
        )
        misses = 0
        while True:
            try:
                state = wait_for_settled_power(s.counted(), rid.format(), api, s.pacer)
            except GateFailed as failed:
                misses += 1
                self._read_again(
                    jobs,
                    failed,
                    misses,
                    lambda cls: Finish(
                        Outcome.FAILED,
                        ConflictKind.STATE_PREREQUISITE,
                        f"{c.reason} ({c.code}: {clip(c.message)}); its power state could "
                        f"not be read: {cls.reason}",
                    ),
                )
                continue
            except GateTimeout as timeout:
                raise Finish(
                    Outcome.FAILED, ConflictKind.STATE_PREREQUISITE, str(timeout)
                ) from timeout
            s.emit(EventType.WAITING, jobs, detail={"on": "powerState", "reached": state})
            return

    def _read_again(
        self,
        jobs: list[Job],
        failed: GateFailed,
        misses: int,
        finish: Callable[[Classification], Finish],
    ) -> None:
        """A read that failed says nothing about what it watches: after a backoff it is read
        again, as any throttled or transient read is, up to ``max_rounds`` misses; any other
        failure, or one more miss, ends the jobs with ``finish``."""
        cls = failed.response.classification()
        if (
            cls.kind not in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT)
            or misses > self.s.settings.max_rounds
        ):
            raise finish(cls) from failed
        self.s.backoff_or_finish(jobs, cls)

    def restore_pending(self, items: Sequence[Item]) -> bool:
        """Whether an earlier attempt deallocated this running VM and never started it again."""
        pending = False
        for item in items:
            if item.intent.prerequisite("deallocate") is None:
                continue  # only intents that may deallocate can owe a restart
            for event in self.s.store.events(item.job.id):
                if event.event != EventType.PREREQUISITE:
                    continue
                if event.detail.get("restore") == "running":
                    pending = True
                elif event.detail.get("reached") == "running":
                    pending = False  # only a start that finished settles it, not one begun
        return pending

    def transition(
        self,
        rid: ResourceId,
        api: str,
        items: Sequence[Item],
        action: str,
        target: str | None,
        *,
        restore: str | None = None,
    ) -> None:
        """Run a declared transition (deallocate, start…) and wait for the state it leads to.

        ``restore`` records, durably before the POST (events flush before every ARM call),
        the power state to bring the VM back to, so a worker taking over can finish the job.
        """
        s = self.s
        jobs = [i.job for i in items]
        detail: dict[str, Any] = {"action": action, "until": target}
        if restore is not None:
            detail["restore"] = restore
        s.emit(EventType.PREREQUISITE, jobs, verb="POST", detail=detail)
        tries = 0
        while True:
            tries += 1
            if tries > s.settings.max_rounds:
                raise Finish(
                    Outcome.FAILED,
                    ConflictKind.OPERATION_IN_PROGRESS,
                    f"the '{action}' transition was refused {s.settings.max_rounds} times: "
                    "the VM kept being busy",
                )
            if tries == 1:
                s.budget.record_work()  # retries of it are extra calls, not more work
            s.report.writes += 1
            response = s.call("POST", f"{rid.format()}/{action}", api_version=api)
            if response is not None and response.ok:
                break
            c = (
                s.last_transport
                if response is None
                else s.conflict(rid, items, response.classification())
            )
            if c.kind is ConflictKind.OPERATION_IN_PROGRESS:
                self.wait_in_progress(rid, api, items, c)
                continue
            if c.kind in (ConflictKind.THROTTLED, ConflictKind.TRANSIENT):
                s.backoff_or_finish(jobs, c)
                continue
            raise Finish(
                Outcome.BLOCKED if c.kind is ConflictKind.LOCKED else Outcome.FAILED,
                c.kind,
                f"the '{action}' transition failed: {c.reason} ({c.code}: {clip(c.message)})",
            )
        url = response.header("azure-asyncoperation") or response.header("location")
        misses = 0
        while True:
            try:
                self._follow_transition(jobs, action, url, rid, api=api, target=target)
                break
            except GateFailed as failed:
                misses += 1
                # The POST is not resent: only the poll is read again.
                self._read_again(
                    jobs,
                    failed,
                    misses,
                    lambda cls: Finish(
                        Outcome.FAILED, cls.kind, f"could not follow '{action}': {cls.reason}"
                    ),
                )
            except GateTimeout as timeout:
                raise Finish(
                    Outcome.FAILED, ConflictKind.STATE_PREREQUISITE, str(timeout)
                ) from timeout
        if target is not None:
            s.emit(EventType.PREREQUISITE, jobs, detail={"action": action, "reached": target})
        fresh = s.call("GET", rid.format(), api_version=api)
        if fresh is not None and fresh.ok:
            own = norm_etag(fresh.etag)
            if own is not None:
                s.own_etags.add(own)

    def _follow_transition(
        self,
        jobs: Sequence[Job],
        action: str,
        url: str | None,
        rid: ResourceId,
        *,
        api: str,
        target: str | None,
    ) -> None:
        s = self.s
        if url:
            outcome = wait_for_operation(s.counted(), url, s.pacer)
            if not outcome.succeeded:
                err = outcome.error
                raise Finish(
                    Outcome.FAILED,
                    ConflictKind.STATE_PREREQUISITE,
                    f"the '{action}' transition ended {outcome.status}: {err.message if err else ''}",
                )
        if target is not None:
            s.emit(EventType.WAITING, jobs, detail={"on": "powerState", "state": target})
            wait_for_power_state(s.counted(), rid.format(), api, target, s.pacer)

    def restore_power(self, rid: ResourceId, api: str, items: Sequence[Item], fin: Finish) -> None:
        """The VM was running before our deallocate and the write failed: start it again."""
        try:
            self.transition(rid, api, items, "start", "running")
        except Finish as second:
            fin.reason += f"; starting the VM again also failed: {second.reason}"
        else:
            fin.reason += "; the VM was started again"
