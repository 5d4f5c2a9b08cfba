"""The Python API: submit intents to a job store, wait for their outcomes, run workers.

::

    from armguard import Coordinator, TagsIntent

    with Coordinator("jobs.db", writer="tag-normalizer") as armguard:
        job = armguard.submit(resource_id, TagsIntent({"owner": "media"}))
        done = armguard.wait(job, timeout=120)      # WaitTimeout if no worker got to it
        print(done.outcome, done.reason)

A :class:`Coordinator` wraps one store handle (``open_store``: an SQLite path or a
``postgresql://`` URL). Validation and submission are :mod:`armguard.coordinator.submit`'s;
waits are :mod:`armguard.coordinator.waiting`'s; workers are
:class:`armguard.coordinator.worker.Worker`. ``docs/python.md`` has runnable examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from armguard.arm.clients import client_factory
from armguard.clock import Clock, SystemClock
from armguard.coordinator.gates import Requester
from armguard.coordinator.intents import Intent, intent_from_json
from armguard.coordinator.model import Job, JobSpec, JobState, StalePolicy
from armguard.coordinator.store import Store
from armguard.coordinator.stores import open_store, redact
from armguard.coordinator.submit import build_spec
from armguard.coordinator.waiting import ChangeFeed, JobNotFound, wait_for, wait_for_async
from armguard.coordinator.worker import Worker, WorkerSettings, WorkerStats
from armguard.events import JobEvent

__all__ = ["Coordinator", "Submission"]

JobRef = Job | str
"""A job, or its id."""


@dataclass(frozen=True)
class Submission:
    """One intent for :meth:`Coordinator.submit_many`; the fields are :meth:`Coordinator.submit`'s
    arguments."""

    resource_id: str
    intent: Intent | Mapping[str, Any] | str
    writer: str | None = None
    baseline_etag: str | None = None
    baseline: Mapping[str, Any] | None = None
    on_stale: StalePolicy | str = StalePolicy.REBASE
    idempotency_key: str | None = None


class Coordinator:
    """A handle on one job store: submit, wait, list, and run workers on it.

    ``store``: an SQLite file path (``sqlite:///path`` too) or a ``postgresql://`` URL.
    ``writer``: the name submits are made under unless one is given per submit (it is the
    caller ARM's Activity Log shows). ``clock``: the clock waits and workers time themselves
    on, and the store's (tests pass a ``ManualClock``); by default the system's, and a
    PostgreSQL store then uses the server's time for leases.

    Thread-safe for submits, reads and waits. Close it (or use ``with``) when done.
    """

    def __init__(
        self, store: str, *, writer: str | None = None, clock: Clock | None = None
    ) -> None:
        self._url = store
        self._store_clock = clock
        self.clock: Clock = clock or SystemClock()
        self.writer = writer
        self.store: Store = open_store(store, clock=clock)
        self._changes = ChangeFeed(self.store)

    def __repr__(self) -> str:
        return f"Coordinator({redact(self._url)!r}, writer={self.writer!r})"

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- submitting -------------------------------------------------------------------------

    def submit(
        self,
        resource_id: str,
        intent: Intent | Mapping[str, Any] | str,
        *,
        writer: str | None = None,
        baseline_etag: str | None = None,
        baseline: Mapping[str, Any] | None = None,
        on_stale: StalePolicy | str = StalePolicy.REBASE,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue ``intent`` on ``resource_id`` and return the queued job.

        ``intent``: a ``TagsIntent``, ``MergeIntent``, ``PutIntent``, ``ActionIntent``,
        ``ResizeIntent`` or ``DeleteIntent`` (or its JSON form). ``baseline``: the body the
        writer read before building the intent (its ``etag`` is the baseline ETag); with it a
        job whose resource moved on is rebased three-way. ``on_stale``: ``rebase``, ``drop``
        or ``fail``. ``idempotency_key``: a key already used returns that job unchanged.

        Raises ``ValueError`` (``IntentError``, ``InvalidResourceId``, ``ApiVersionRequired``
        are ValueErrors) for input that cannot be queued; nothing is queued then.
        """
        return self.store.submit(
            self._spec(
                Submission(
                    resource_id,
                    intent,
                    writer=writer,
                    baseline_etag=baseline_etag,
                    baseline=baseline,
                    on_stale=on_stale,
                    idempotency_key=idempotency_key,
                )
            )
        )

    def submit_many(self, submissions: Iterable[Submission]) -> list[Job]:
        """Queue several intents in the order given, in as few commits as the store can; the
        jobs come back in the same order. All are checked first: if one is invalid nothing is
        queued, and the error names which one it was."""
        specs = []
        for n, item in enumerate(submissions):
            try:
                specs.append(self._spec(item))
            except ValueError as exc:
                exc.add_note(f"in submission {n} of the list (counting from 0): nothing was queued")
                raise
        return self.store.submit_many(specs) if specs else []

    def _spec(self, item: Submission) -> JobSpec:
        if not isinstance(item, Submission):
            raise TypeError(f"submit_many takes Submission objects, not {type(item).__name__}")
        intent = item.intent if isinstance(item.intent, Intent) else intent_from_json(item.intent)
        return build_spec(
            item.resource_id,
            intent,
            item.writer if item.writer is not None else (self.writer or ""),
            baseline_etag=item.baseline_etag,
            on_stale=_policy(item.on_stale),
            idempotency_key=item.idempotency_key,
            baseline=item.baseline,
        )

    # -- reading ----------------------------------------------------------------------------

    def get(self, job: JobRef) -> Job:
        """The job as the store has it now. Raises :class:`JobNotFound`."""
        job_id = _id(job)
        found = self.store.get(job_id)
        if found is None:
            raise JobNotFound(job_id)
        return found

    def jobs(self, state: JobState | str | None = None, *, limit: int = 1000) -> list[Job]:
        """Jobs in submission order, optionally only those in ``state``."""
        if state is not None and not isinstance(state, JobState):
            try:
                state = JobState(state)
            except ValueError:
                known = ", ".join(s.value for s in JobState)
                raise ValueError(f"unknown job state {state!r}; known: {known}") from None
        return self.store.jobs(state, limit=limit)

    def events(self, job: JobRef | None = None) -> list[JobEvent]:
        """Every step of one job (or of all jobs) in the order recorded: the JSON lines
        ``armguard timeline`` reads (``event.to_json()``)."""
        if job is None:
            return self.store.events(None)
        return self.store.events(self.get(job).id)

    # -- waiting ----------------------------------------------------------------------------

    def wait(self, job: JobRef, *, timeout: float | None = 600.0) -> Job:
        """Block until ``job`` has its outcome and return it (``outcome``, ``kind``,
        ``reason``, ``result``). ``timeout``: seconds on this coordinator's clock (None: no
        limit). Raises :class:`WaitTimeout` saying the job's state then, or
        :class:`JobNotFound`."""
        return wait_for(self._changes, [_id(job)], timeout=timeout, clock=self.clock)[0]

    def wait_all(self, jobs: Iterable[JobRef], *, timeout: float | None = 600.0) -> list[Job]:
        """:meth:`wait` for several jobs under one ``timeout``; results in the order given."""
        return wait_for(self._changes, [_id(j) for j in jobs], timeout=timeout, clock=self.clock)

    async def wait_async(self, job: JobRef, *, timeout: float | None = 600.0) -> Job:
        """:meth:`wait` for asyncio: the event loop keeps running; cancelling ends the wait."""
        found = await wait_for_async(self._changes, [_id(job)], timeout=timeout, clock=self.clock)
        return found[0]

    async def wait_all_async(
        self, jobs: Iterable[JobRef], *, timeout: float | None = 600.0
    ) -> list[Job]:
        """:meth:`wait_all` for asyncio."""
        ids = [_id(j) for j in jobs]
        return await wait_for_async(self._changes, ids, timeout=timeout, clock=self.clock)

    # -- workers ----------------------------------------------------------------------------

    def worker(
        self,
        endpoint: str | None = None,
        *,
        cloud: str = "AzureCloud",
        settings: WorkerSettings | None = None,
        client_for: Callable[[str], Requester] | None = None,
    ) -> Worker:
        """A worker on this store, not started: ``run_until_idle()``, or ``run_forever()`` in a
        thread and ``stop()`` to end it. Each of its loops opens its own store handle.

        ``endpoint``: ``http://127.0.0.1:PORT`` for the emulator (each writer then writes under
        its own name); None for real ARM in ``cloud`` with ``DefaultAzureCredential``.
        ``client_for``: your own ARM client per writer name instead.
        """
        if client_for is None:
            client_for = _clients(endpoint, cloud)
        url, clock = self._url, self._store_clock
        return Worker(
            lambda: open_store(url, clock=clock), client_for, self.clock, settings=settings
        )

    def run_worker(
        self,
        endpoint: str | None = None,
        *,
        cloud: str = "AzureCloud",
        settings: WorkerSettings | None = None,
        client_for: Callable[[str], Requester] | None = None,
    ) -> WorkerStats:
        """Run a worker in this process until no job is queued or running; its counts."""
        worker = self.worker(endpoint, cloud=cloud, settings=settings, client_for=client_for)
        return worker.run_until_idle()


def _id(job: JobRef) -> str:
    if isinstance(job, Job):
        return job.id
    if not isinstance(job, str) or not job.strip():
        raise ValueError(f"a job is a Job or its id (a non-empty string), not {job!r}")
    return job


def _policy(value: StalePolicy | str) -> StalePolicy:
    try:
        return StalePolicy(value)
    except ValueError:
        known = ", ".join(p.value for p in StalePolicy)
        raise ValueError(f"on_stale must be one of {known}, not {value!r}") from None


def _clients(endpoint: str | None, cloud: str) -> Callable[[str], Requester]:
    return client_factory(endpoint, cloud)
