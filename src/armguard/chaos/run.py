"""One chaos run: start everything, drive the load and the nemesis, drain, read, check.

Bounded three ways: the load has a fixed number of intents, the nemesis acts only during the
load window, and the drain has a deadline. Everything it starts (the emulator, the workers,
a PostgreSQL cluster, stand-in writers) is ended by PID before it returns, whatever happens.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from armguard.arm.client import ArmClient, StaticIdentityCredential
from armguard.chaos import nemesis
from armguard.chaos.checker import Budget, Evidence, check
from armguard.chaos.load import Planned, plan_load
from armguard.chaos.pg import PgCluster
from armguard.chaos.procs import Proc, Procs, python_child
from armguard.chaos.world import World, api_of, build_world, create_world
from armguard.clock import SystemClock
from armguard.coordinator.intents import intent_from_json
from armguard.coordinator.model import JobSpec, JobState
from armguard.coordinator.sql_store import StoreError
from armguard.coordinator.store import Store
from armguard.coordinator.stores import open_store
from armguard.coordinator.submit import build_spec

__all__ = ["ChaosConfig", "ChaosError", "run_chaos"]

STORES = ("sqlite", "postgres")
_TAGS_DEFAULT = "/providers/Microsoft.Resources/tags/default"
# Holds the SQLite write lock with uncommitted changes until it is killed: a writer that dies
# mid-transaction, leaving its journal for the next opener to roll back.
_SQLITE_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE jobs SET updated_at = updated_at")
print("holding", flush=True)
time.sleep(600)
"""


class ChaosError(RuntimeError):
    """The run could not be carried out (not: the run found a defect)."""


@dataclass(frozen=True)
class ChaosConfig:
    store: str = "sqlite"
    seed: int = 1
    intents: int = 600
    resources: int = 50
    workers: int = 3
    concurrency: int = 2
    duration: float = 40.0
    """Seconds the load is submitted over; the nemesis acts in this window."""
    drain_timeout: float = 180.0
    lease_ttl: float = 3.0
    time_scale: float = 0.01
    nemesis_every: float = 4.0
    nemeses: tuple[str, ...] | None = None
    """Only these nemeses (None: every one the store allows)."""
    keep: Path | None = None
    """Keep the logs, the SQLite file and the evidence here (default: a deleted temp dir)."""

    def check(self) -> None:
        if self.store not in STORES:
            raise ValueError(f"the store must be sqlite or postgres, not {self.store!r}")
        if not 1 <= self.intents <= 1_000_000:
            raise ValueError("--intents must be between 1 and 1,000,000")
        if not 8 <= self.resources <= 10_000:
            raise ValueError("--resources must be between 8 and 10,000")
        if not 1 <= self.workers <= 32 or not 1 <= self.concurrency <= 32:
            raise ValueError("--workers and --concurrency must be between 1 and 32")
        if not 1 <= self.duration <= 86_400 or not 1 <= self.drain_timeout <= 86_400:
            raise ValueError("--duration and --drain-timeout must be between 1 s and a day")
        if not 0.5 <= self.lease_ttl <= 600:
            raise ValueError("--lease-ttl must be between 0.5 and 600 s")
        if not 0 < self.time_scale <= 1:
            raise ValueError("--time-scale must be above 0 and at most 1")
        if self.nemesis_every <= 0:
            raise ValueError("--nemesis-every must be positive")
        unknown = set(self.nemeses or ()) - set(nemesis.NEMESES)
        if unknown:
            raise ValueError(
                f"unknown nemesis {', '.join(sorted(unknown))}; known: {', '.join(nemesis.NEMESES)}"
            )


@dataclass
class _Run:
    cfg: ChaosConfig
    procs: Procs
    say: Callable[[str], None]
    url: str = ""
    endpoint: str = ""
    pg: PgCluster | None = None
    store: Store | None = None
    workers: list[Proc] = field(default_factory=list)
    started_workers: int = 0
    undo: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    faults_applied: dict[str, int] = field(default_factory=dict)
    """Requests the emulator's fault rules struck, by effect (a status, latency, operation)."""

    # -- processes --------------------------------------------------------------------

    def start_worker(self) -> Proc:
        self.started_workers += 1
        proc = self.procs.armguard(
            f"worker-{self.started_workers}",
            "worker",
            "--store", self.url,
            "--endpoint", self.endpoint,
            "--concurrency", str(self.cfg.concurrency),
            "--lease-ttl", str(self.cfg.lease_ttl),
            "--linger", "0.1",
            "--linger-max", "1",
            "--store-outage", "600",
            "--arm-outage", "600",
            "--output", "json",
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def restart_worker(self) -> None:
        self.start_worker()

    def start_emulator(self) -> None:
        proc = self.procs.armguard(
            "emulator", "emulator", "--port", "0",
            "--time-scale", str(self.cfg.time_scale), "--seed", str(self.cfg.seed),
        )  # fmt: skip
        log = self.procs.log_dir / "emulator.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in log.read_text(errors="replace").splitlines():
                if "listening on " in line:
                    self.endpoint = line.rsplit(" ", 1)[-1].strip()
                    return
            if not proc.alive():
                raise ChaosError(f"the emulator exited: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        raise ChaosError("the emulator did not start listening within 60 s")

    # -- the store, through outages ------------------------------------------------------

    def with_store(self, what: Callable[[Store], Any], timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.store is None:
                    self.store = open_store(self.url, clock=SystemClock())
                return what(self.store)
            except (StoreError, OSError) as exc:
                self._drop_store()
                if time.monotonic() > deadline:
                    raise ChaosError(
                        f"the store stayed unusable for {timeout:.0f} s: {exc}"
                    ) from exc
                time.sleep(0.2)

    def _drop_store(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def close(self) -> None:
        self._drop_store()


def run_chaos(cfg: ChaosConfig, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run once and return the report (``checks.ok`` says whether the promise held)."""
    cfg.check()
    workdir = cfg.keep or Path(tempfile.mkdtemp(prefix="armguard-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(cfg, Procs(workdir), say)
    try:
        return _run(run, workdir)
    finally:
        run.close()
        run.procs.close()
        if run.pg is not None:
            run.pg.stop()
        if cfg.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(run: _Run, workdir: Path) -> dict[str, Any]:
    cfg = run.cfg
    if cfg.store == "postgres":
        run.pg = PgCluster()
        run.url = run.pg.start()
    else:
        run.url = str(workdir / "jobs.db")
    run.start_emulator()
    run.say(f"emulator on {run.endpoint}; store {cfg.store}")
    arm = ArmClient(StaticIdentityCredential("chaos-setup"), endpoint=run.endpoint, timeout=30)
    world = build_world(cfg.resources)
    create_world(arm, world)
    initial = _read_all(arm, world)
    run.with_store(lambda s: s.queue_depth())  # creates the schema before the workers race
    for _ in range(cfg.workers):
        run.start_worker()
    planned = plan_load(world, cfg.intents, cfg.seed)
    faults = nemesis.schedule(cfg.seed, cfg.store, cfg.duration, cfg.nemesis_every, cfg.nemeses)
    admin = httpx.Client(base_url=run.endpoint, timeout=30)
    job_ids: dict[int, str] = {}
    started = time.monotonic()
    last_fault = started
    try:
        last_fault = _drive(
            run,
            arm=arm,
            admin=admin,
            world=world,
            initial=initial,
            planned=planned,
            faults=faults,
            job_ids=job_ids,
            started=started,
        )
        drained_at = _drain(run, started)
    finally:
        admin.close()
    drain_s = round(max(0.0, drained_at - last_fault), 2) if drained_at is not None else None
    for proc in list(run.workers):
        run.procs.stop(proc)
    evidence = _evidence(
        run, arm=arm, world=world, initial=initial, planned=planned, job_ids=job_ids
    )
    report = check(evidence).to_json()
    return {
        "store": cfg.store,
        "seed": cfg.seed,
        "intents": len(planned),
        "resources": len(world.resources),
        "workers": cfg.workers,
        "workerProcessesStarted": run.started_workers,
        "nemesis": dict(sorted(run.fired.items())),
        "emulatorFaultsApplied": dict(sorted(run.faults_applied.items())),
        "loadSeconds": round(cfg.duration, 1),
        "drainedAfterLastFaultSeconds": drain_s,
        "elapsedSeconds": round(time.monotonic() - started, 1),
        "checks": report,
    }


def _read_all(arm: ArmClient, world: World) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for res in world.resources:
        params = {"$expand": "instanceView"} if res.kind == "vm" else None
        got = arm.request("GET", res.id, api_version=api_of(res.id), params=params)
        if got.status == 404:
            out[res.id] = None
        elif got.ok and isinstance(got.body, dict):
            out[res.id] = got.body
        else:
            raise ChaosError(f"cannot read {res.id}: {got.status} {got.text[:200]}")
    return out


# -- the load and the nemesis ---------------------------------------------------------------


def _drive(
    run: _Run,
    *,
    arm: ArmClient,
    admin: httpx.Client,
    world: World,
    initial: dict[str, dict[str, Any] | None],
    planned: list[Planned],
    faults: list[nemesis.Fault],
    job_ids: dict[int, str],
    started: float,
) -> float:
    cfg = run.cfg
    rng = random.Random(cfg.seed ^ 0xFA17)
    pace = cfg.duration / max(1, len(planned))
    next_intent = 0
    next_fault = 0
    last_fault = started
    while next_intent < len(planned) or next_fault < len(faults) or run.undo:
        now = time.monotonic() - started
        due = min(len(planned), int(now / pace) + 1)
        if next_intent < due:
            _submit(run, arm, initial, planned[next_intent:due], job_ids)
            next_intent = due
        while next_fault < len(faults) and faults[next_fault].at <= now:
            fault = faults[next_fault]
            _fire(run, admin=admin, arm=arm, world=world, fault=fault, rng=rng, started=started)
            run.fired[fault.kind] = run.fired.get(fault.kind, 0) + 1
            next_fault += 1
            last_fault = time.monotonic()
        for item in [u for u in run.undo if u[0] <= time.monotonic()]:
            run.undo.remove(item)
            item[1]()
            last_fault = time.monotonic()
        time.sleep(0.05)
    applied = admin.get("/_armguard/faults/applied").json().get("value") or []
    for fault in applied:
        effect = fault.get("effect") or {}
        what = str(effect.get("status") or ("latency" if effect.get("latency") else "operation"))
        run.faults_applied[what] = run.faults_applied.get(what, 0) + 1
    admin.delete("/_armguard/faults")
    return last_fault


def _submit(
    run: _Run,
    arm: ArmClient,
    initial: dict[str, dict[str, Any] | None],
    batch: list[Planned],
    job_ids: dict[int, str],
) -> None:
    specs: list[tuple[int, JobSpec]] = []
    for p in batch:
        baseline: dict[str, Any] | None = None
        if p.baseline == "old":
            baseline = initial.get(p.resource.id)
        elif p.baseline == "fresh":
            got = arm.request("GET", p.resource.id, api_version=api_of(p.resource.id))
            baseline = got.body if got.ok and isinstance(got.body, dict) else None
        intent = intent_from_json(p.intent)
        specs.append(
            (
                p.index,
                build_spec(
                    p.resource.id,
                    intent,
                    p.writer,
                    on_stale=p.on_stale,
                    # Resubmitting after a store outage must not queue an intent twice.
                    idempotency_key=f"chaos-{run.cfg.seed}-{p.index}",
                    baseline=baseline,
                ),
            )
        )
    jobs = run.with_store(lambda s: s.submit_many([spec for _, spec in specs]))
    for (index, _), job in zip(specs, jobs, strict=True):
        job_ids[index] = job.id


def _alive_worker(run: _Run, pick: int) -> Proc | None:
    alive = [w for w in run.workers if w.alive() and not w.stopped]
    return alive[pick % len(alive)] if alive else None


def _fire(
    run: _Run,
    *,
    admin: httpx.Client,
    arm: ArmClient,
    world: World,
    fault: nemesis.Fault,
    rng: random.Random,
    started: float,
) -> None:
    cfg = run.cfg
    now = time.monotonic()
    kind = fault.kind
    run.say(f"{now - started:6.1f}s nemesis {kind}")
    if kind == "kill9":
        worker = _alive_worker(run, fault.pick)
        if worker is not None:
            run.procs.kill9(worker)
            run.workers.remove(worker)
            run.undo.append((now + fault.duration, run.restart_worker))
    elif kind == "pause":
        worker = _alive_worker(run, fault.pick)
        if worker is not None:
            run.procs.pause(worker)
            # Past the lease: another worker takes its jobs; on SIGCONT it is a zombie.
            span = max(fault.duration, cfg.lease_ttl * 1.5)
            run.undo.append((now + span, lambda: run.procs.resume(worker)))
    elif kind in nemesis.EMULATOR_FAULTS:
        rule = nemesis.fault_rule(kind, fault.duration, cfg.time_scale, rng)
        added = admin.post("/_armguard/faults", json=rule)
        if added.status_code != 201:
            raise ChaosError(f"the emulator refused a fault rule: {added.text[:300]}")
        rule_id = added.json()["id"]
        run.undo.append((now + fault.duration, lambda: _remove_rule(admin, rule_id)))
    elif kind == "outside":
        _outside_writers(arm, world, fault.pick)
    elif kind == "sqlite_writer":
        child = python_child(run.procs, f"sqlite-writer-{fault.pick}", _SQLITE_WRITER, run.url)
        log = run.procs.log_dir / f"sqlite-writer-{fault.pick}.log"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.alive():
            if "holding" in log.read_text(errors="replace"):
                break
            time.sleep(0.02)
        time.sleep(min(fault.duration, 1.0))  # workers meet a held write lock meanwhile
        run.procs.kill9(child)
    elif kind == "pg_restart":
        assert run.pg is not None
        run.pg.restart_immediate()
    elif kind == "pg_drop":
        assert run.pg is not None
        run.pg.terminate_backends()


def _remove_rule(admin: httpx.Client, rule_id: str) -> None:
    admin.delete(f"/_armguard/faults/{rule_id}")


def _outside_writers(arm: ArmClient, world: World, pick: int) -> None:
    """Writers outside armguard: tags merged on a few resources (only ``outside*`` keys, as
    the tags API's Merge leaves every other key alone), and a VNet updated by a pipeline with
    the body it read, which holds the VNet while its operation runs."""
    rng = random.Random(pick)
    outside = ArmClient(StaticIdentityCredential("outside-pipeline"), endpoint=arm.endpoint)
    for res in rng.sample(list(world.resources), min(4, len(world.resources))):
        outside.request(
            "PATCH",
            res.id + _TAGS_DEFAULT,
            api_version="2021-04-01",
            body={"operation": "Merge", "properties": {"tags": {"outside": str(pick)}}},
        )
    vnets = world.of("vnet")
    if vnets:
        vnet = rng.choice(vnets)
        got = outside.request("GET", vnet.id, api_version=api_of(vnet.id))
        if got.ok and isinstance(got.body, dict) and got.etag:
            body = {k: v for k, v in got.body.items() if k in ("location", "tags", "properties")}
            body["tags"] = {**(body.get("tags") or {}), "outsideHold": str(pick)}
            props = dict(body.get("properties") or {})
            props.pop("provisioningState", None)
            props.pop("resourceGuid", None)
            body["properties"] = props
            outside.request(
                "PUT", vnet.id, api_version=api_of(vnet.id), body=body,
                headers={"If-Match": got.etag},
            )  # fmt: skip


def _drain(run: _Run, started: float) -> float | None:
    """Restore every worker, then wait until nothing is queued or running."""
    for proc in list(run.workers):
        if proc.stopped:
            run.procs.resume(proc)
    while len([w for w in run.workers if w.alive()]) < run.cfg.workers:
        run.workers = [w for w in run.workers if w.alive()]
        run.start_worker()
    deadline = time.monotonic() + run.cfg.drain_timeout

    def busy(s: Store) -> bool:
        return bool(s.jobs(JobState.QUEUED, limit=1) or s.jobs(JobState.RUNNING, limit=1))

    while time.monotonic() < deadline:
        if not run.with_store(busy):
            return time.monotonic()
        time.sleep(0.25)
    run.say(f"not drained after {run.cfg.drain_timeout:.0f} s")
    return None


# -- the evidence ---------------------------------------------------------------------------


def _evidence(
    run: _Run,
    *,
    arm: ArmClient,
    world: World,
    initial: dict[str, dict[str, Any] | None],
    planned: list[Planned],
    job_ids: dict[int, str],
) -> Evidence:
    jobs = run.with_store(lambda s: s.jobs(limit=10_000_000))
    events = run.with_store(lambda s: s.events())
    dump = httpx.get(f"{run.endpoint}/_armguard/state", timeout=120).json()
    final = _read_all(arm, world)
    job_rows = [
        {
            "id": j.id,
            "seq": j.seq,
            "resource_id": j.resource_id,
            "state": str(j.state),
            "outcome": str(j.outcome) if j.outcome else None,
            "kind": j.kind,
            "reason": j.reason,
            "intent": dict(j.spec.intent),
            "has_baseline": j.spec.baseline is not None or j.spec.baseline_etag is not None,
        }
        for j in jobs
    ]
    planned_rows = [
        {
            "index": p.index,
            "resource_id": p.resource.id,
            "intent": p.intent,
            "job_id": job_ids.get(p.index),
        }
        for p in planned
    ]
    event_rows = [json_event(e.to_json()) for e in events]
    if run.cfg.keep is not None:
        _save(run.procs.log_dir, planned_rows, job_rows, event_rows, dump, final)
    return Evidence(
        planned=planned_rows,
        jobs=job_rows,
        events=event_rows,
        activity=list(dump.get("activityLog") or []),
        initial=initial,
        final=final,
        budget=Budget(workers=run.started_workers),
    )


def json_event(text: str) -> dict[str, Any]:
    import json  # noqa: PLC0415

    value: dict[str, Any] = json.loads(text)
    return value


def _save(directory: Path, *parts: Any) -> None:
    import json  # noqa: PLC0415

    names = ("planned.json", "jobs.json", "events.json", "emulator-state.json", "final.json")
    for name, data in zip(names, parts, strict=True):
        (directory / name).write_text(json.dumps(data, indent=1, default=str))
