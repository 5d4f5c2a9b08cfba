"""The distributed store: one PostgreSQL database shared by workers on many machines.

Concurrency choice: every state-changing transaction (claim, heartbeat, complete, release)
first takes one transaction-scoped advisory lock for the store's schema
(``pg_advisory_xact_lock``), then runs the shared claim rules of :mod:`.sql_store` at READ
COMMITTED. A submit takes the same lock in *shared* mode (``pg_advisory_xact_lock_shared``):
submits run side by side, but no claim runs while any submit is between drawing its ``seq``
and committing, which is all the lock is there for (see below). The one exception is a claim's
try at the common case in the server (below), which holds the lock shared as well, so such
tries run side by side with one another and with submits, and keep the queue's order by other
means. Why not ``FOR UPDATE SKIP LOCKED`` or SERIALIZABLE for everything:

* The claim rules are a property of the whole queue, not of one row: a job is claimable only if
  no *older queued* job shares a key with it. SKIP LOCKED hides exactly the rows another
  claimer is looking at, so a second claimer would skip job 10 and take job 11 on the same key
  (a FIFO violation) unless it re-read the skipped rows. The server-side try does re-read them
  (it leases one job, and only if no older queued job shares a key with it, the skipped ones
  included); the rules' batches, reaps and linger would need it at every step, which is the
  global lock again.
* Identity values are handed out before commit, so without a lock a claim can see job 11
  committed while job 10 (same key) is still in flight and run 11 first. A claim holding the
  lock exclusively sees only committed (or rolled-back) ``seq``s; the server-side try takes
  only jobs up to a seq it has seen settle (see ``_CLAIM_HEAD_FN``).
* SERIALIZABLE would be correct, but every claim reads the queue head, so under contention
  almost every pair of concurrent claims conflicts; that is a retry storm of our own making —
  the very pattern this project exists to stop against ARM.
* Cost, measured (``benchmarks/store_overhead.py --statement-timings``): with one client the
  lock is free — it travels in the pipeline with the transaction's first statement. Under
  contention an exclusive holder waits for every shared one and the commits behind them, WAL
  flush included; ``benchmarks/scale.py``'s worker scaling showed throughput falling from two
  workers to eight while the claims of the common case were exclusive, and holding since they
  share the lock. Completions, heartbeats and releases keep the exclusive lock: a claim reaps
  expired leases, and with the lock a completion can never interleave with a reap (see the
  guard below). A completion carried by a server-side try runs under that try's shared lock:
  it touches its own lease's rows only, and every reap is an exclusive holder. Locks are
  released by commit, rollback, or the server when a client's connection dies, so a crashed
  worker never leaves one held.

Round trips and statements: the connection stays in libpq pipeline mode and autocommit, and a
transaction is the *implicit* one the extended protocol opens at the first statement after a
Sync and commits at the next Sync — no BEGIN or COMMIT messages. Mid-transaction results are
fetched with a flush request, which keeps it open. Every message costs the client a send and
the server a snapshot, so statements that do not read one another's writes are sent as one,
with data-modifying CTEs (``together`` in :meth:`.SqlStore._once`). So a submit is one round
trip of two statements (the shared lock with the NOTIFY; the INSERT), a claim two round trips
of three statements (the lock; the live-state read; all its writes), and heartbeat, complete
and release one round trip each: the lock with the NOTIFY, then the guard and the writes as one
statement. A claim that carries a completion (a worker's next claim) takes the lock with the
completion's NOTIFY and sends the completion's guard and writes as one more statement in its
first round trip, before the live-state read, which therefore sees the completed jobs' keys
free. The lock is always a statement of its own: a statement's snapshot is taken when it
starts, so a statement that waited for the lock inside itself would decide on the state from
before the previous holder's commit. The guard is ``armguard_fenced(<condition>)``, a function
in the store's schema that raises SQLSTATE ``AG001`` when the condition is false: the statement
fails as a whole, the pipeline skips whatever follows, and the implicit transaction rolls back —
a refused completion writes nothing without a round trip of its own to decide.

A claim's common case is decided in the server, in its first round trip: after the lock (held
shared; and a carried completion) comes a call of ``armguard_claim_head_v2``, which leases the
oldest settled queued job no other try is taking when nothing has expired, its keys are free,
no older queued job shares one and it has no queued follower on its resource — the only batch
the shared rules could choose then. The call is sent with the Sync that commits: the server
takes the lock, runs the completion and the call, commits and releases the lock without waiting
for the client. Tries of several workers overlap, their commits and WAL flushes too, and an
exclusive holder waits for them all. Anything else makes the function write nothing; the
carried completion and the events commit with it, and the claim goes on with the shared rules
under the exclusive lock, in a new transaction.

Statement texts do not depend on how many jobs, keys or events they carry (one row is written
plainly, more travel as arrays: ``= ANY(?)``, ``unnest(?, …)``), so each is prepared once per
connection (``prepare_threshold=0``) — and again each time the jobs table has grown fourfold,
since PostgreSQL keeps a generic plan made on a near-empty table until an ANALYZE (see
``_jobs_reached``; claims and submits report the newest job's seq). The session sets
``random_page_cost = 1.1``: the store's reads are index probes on a small, hot working set,
and at the default (4, for spinning disks) a new store whose statistics autovacuum has not
gathered yet read every queued job and sorted them to find the first eight (0.5 ms a claim at
a thousand queued jobs) instead of walking the queue index.

Time: without an injected clock (or with the plain system clock) "now" is the server's
``statement_timestamp()``, read inside the statement that decides — a claim's live-state read
returns it, and the claim stores leases, events and timestamps with that value; heartbeats,
completions and releases compare expiry in the guard. Workers on machines whose clocks disagree
therefore agree on when a lease expires: a fast clock cannot take over a live lease and a slow
one cannot complete an expired one. ``Lease.expires_at``, ``Job.created_at`` and the like are
server time. An injected clock (tests: ``ManualClock``) is used instead, exactly as before.

``synchronous_commit`` is the server's unless the store URL opts in (see :mod:`.stores`).

The database also enforces the key exclusion by itself: ``lease_keys.key`` is a primary key, so
no bug in the rules could make two leases hold one key. Fencing tokens come from a sequence.
Events and learned scopes are appended without the lock; they do not affect claims' order.

One connection per store object, guarded by a lock; open one store per worker thread (or
share one and accept that its calls take turns).

A server restart (or a dropped connection, an idle timeout) does not end a store object: a
call that finds its connection gone connects again before it sends anything, and the
listener of :meth:`PostgresStore.watch_changes` listens again. Only :meth:`close` ends it. A
call whose connection dies while it is at the server raises :class:`StoreError` and is not
sent again (see :meth:`PostgresStore._live`).
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, cast

import psycopg
from psycopg import pq

from armguard.clock import Clock, SystemClock, isoformat
from armguard.coordinator.model import Lease
from armguard.coordinator.sql_store import (
    SCHEMA_VERSION,
    GuardRefused,
    SqlStore,
    Statement,
    StoreError,
    Tx,
    WriteLock,
    _job,
    split_statements,
    submit_group,
)
from armguard.coordinator.store import Change
from armguard.coordinator.stores import SYNCHRONOUS_COMMIT, redact
from armguard.coordinator.submit_group import SubmitGroup

__all__ = ["PostgresStore"]


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


_LOCK_SQL = {
    "exclusive": "pg_advisory_xact_lock(%s)",
    "shared": "pg_advisory_xact_lock_shared(%s)",
    "head": "pg_advisory_xact_lock_shared(%s)",
}
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INIT_LOCK = "armguard:schema-init"
# This process's stores on one server and schema (with one commit setting) commit their
# concurrent submits together; a group lives as long as a store uses it.
_groups: weakref.WeakValueDictionary[tuple[str, str, str | None], SubmitGroup[Any, Any]] = (
    weakref.WeakValueDictionary()
)
_groups_lock = threading.Lock()
# Separate transactions on separate connections overlap on the server; up to four group
# commits at a time kept four threads' submits as fast as before grouping and halved 64's
# time per submit (benchmarks/concurrent_submits.py; one leader was slower at four threads).
_SUBMIT_LEADERS = 4
_REFUSED = "AG001"  # the SQLSTATE armguard_fenced raises

# Raises when a guard is false, so the statements behind it in the pipeline never run. Created
# when missing, also in a schema made by an older armguard (which never calls it).
_FENCED_FN = """
CREATE OR REPLACE FUNCTION armguard_fenced(ok boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'armguard: the lease no longer admits this holder'
            USING ERRCODE = 'AG001';
    END IF;
    RETURN TRUE;
END
$fn$
"""

# A claim's common case decided where the rows are, in the claim's first round trip: the oldest
# queued job that no other such claim is taking, when its keys are free, no older queued job
# shares one of them and it has no queued follower on its resource, so that the claim's rules
# (``store.py``) give a batch of that job alone. Anything else — a blocked head, followers to
# coalesce, an expired lease to reap — returns one 'general' row having written nothing, and
# the claim goes on with the shared rules of ``sql_store`` under the exclusive store lock.
#
# These claims run side by side: each holds the store lock *shared* (so no exclusive holder —
# the rules, a reap, a heartbeat — runs beside them), and they keep out of one another's way
# with row locks. The head is taken ``FOR UPDATE SKIP LOCKED``, so a second claim passes the
# job a first one is taking; that job is still queued to the second claim, so the second takes
# the next job only if it shares no key with it (or any older queued job), whichever way the
# first claim ends. The keys are checked in one statement, so on one snapshot: a completion
# that frees a key and requeues a job under it is seen whole or not at all.
#
# Only settled jobs are candidates: up to a seq that was the newest one handed out at a moment
# when no submit was in flight. Every INSERT into ``jobs`` holds ``p_submits``, a second
# advisory lock, shared until it commits (the trigger ``jobs_submit_gate``, so an older
# armguard's submits do too); to settle, the function takes it exclusively for an instant and
# reads the identity sequence. Every job up to that seq is then committed or rolled back, so the
# later statements' snapshots see all of them: a claim can never take job 11 while job 10 of the
# same key is still being submitted. The seq is remembered for the session
# (``armguard.settled_seq``) and stays true for ever, so a claim settles again only when no
# settled job is left to take: a drain of a standing backlog settles once. The lock is a
# session lock released at once (an exception handler sees to it on error), and the trigger
# takes the store lock before it, as every submit and claim does, so no two transactions wait
# for each other's locks in opposite orders.
# ``p_now``/``p_ts``: the injected clock's reading and its text, or NULL for the server's clock.
_CLAIM_HEAD = "armguard_claim_head_v2"
_HEAD_SKIPS = 4
_CLAIM_HEAD_SIG = f"{_CLAIM_HEAD}(text,double precision,double precision,text,text,integer,bigint)"
_CLAIM_HEAD_FN = f"""
CREATE OR REPLACE FUNCTION {_CLAIM_HEAD}(
    p_owner text, p_ttl double precision, p_now double precision, p_ts text,
    p_lease_id text, p_max_batch integer, p_submits bigint
) RETURNS TABLE (
    o_took text, o_max_seq bigint, o_fence bigint, o_keys text, o_expires_at double precision,
    o_seq bigint, o_id text, o_spec text, o_state text, o_attempts integer, o_outcome text,
    o_kind text, o_reason text, o_result text, o_created_at double precision,
    o_updated_at double precision
)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_now double precision := COALESCE(
        p_now, CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS double precision));
    v_settled bigint := COALESCE(
        CAST(NULLIF(current_setting('armguard.settled_seq', true), '') AS bigint), 0);
    h record;
    v_keys text[];
    v_keys_json text;
    v_written bigint;
BEGIN
    SELECT j.seq, j.resource_key, j.keys, j.barrier, j.id, j.spec INTO h
    FROM jobs j WHERE j.state = 'queued' AND j.seq <= v_settled ORDER BY j.seq LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'queued'
                             AND j.seq > v_settled) THEN
        BEGIN
            PERFORM pg_advisory_lock(p_submits);
            v_settled := COALESCE(pg_sequence_last_value(
                CAST(pg_get_serial_sequence('jobs', 'seq') AS regclass)), 0);
            PERFORM pg_advisory_unlock(p_submits);
        EXCEPTION WHEN query_canceled OR others THEN
            PERFORM pg_advisory_unlock(p_submits);
            RAISE;
        END;
        PERFORM set_config('armguard.settled_seq', CAST(v_settled AS text), false);
        SELECT j.seq, j.resource_key, j.keys, j.barrier, j.id, j.spec INTO h
        FROM jobs j WHERE j.state = 'queued' AND j.seq <= v_settled ORDER BY j.seq LIMIT 1
        FOR UPDATE SKIP LOCKED;
    END IF;
    o_max_seq := v_settled;
    IF NOT FOUND THEN
        -- Jobs taken by other claims that may yet hand them over, or newer than the settled
        -- seq (the rules wait for the former and see the latter), or a lease to reap.
        o_took := CASE WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.state = 'queued')
            OR EXISTS (SELECT 1 FROM leases l WHERE l.expires_at <= v_now)
            THEN 'general' ELSE 'none' END;
        RETURN NEXT;
        RETURN;
    END IF;
    -- Its keys and every key learned to depend on one of them, either way, in the order of
    -- Python's sorted() (code points: the C collation of UTF-8).
    WITH own AS (
        SELECT e.k FROM json_array_elements_text(CAST(h.keys AS json)) AS e(k)
    ), eff AS (
        SELECT own.k FROM own
        UNION SELECT s.other FROM learned_scopes s WHERE s.key IN (SELECT own.k FROM own)
        UNION SELECT s.key FROM learned_scopes s WHERE s.other IN (SELECT own.k FROM own)
    )
    SELECT array_agg(eff.k COLLATE "C" ORDER BY eff.k COLLATE "C") INTO v_keys FROM eff;
    IF EXISTS (SELECT 1 FROM leases l WHERE l.expires_at <= v_now)
        OR EXISTS (SELECT 1 FROM lease_keys lk WHERE lk.key = ANY(v_keys))
        OR EXISTS (
            SELECT 1 FROM jobs j WHERE j.state = 'queued' AND j.resource_key = ANY(v_keys)
            AND j.seq < h.seq
        )
        OR EXISTS (
            SELECT 1 FROM job_keys k JOIN jobs j ON j.seq = k.seq
            WHERE k.key = ANY(v_keys) AND k.seq < h.seq AND j.state = 'queued'
        )
        OR (h.barrier = 0 AND p_max_batch > 1 AND EXISTS (
            SELECT 1 FROM jobs j WHERE j.state = 'queued' AND j.resource_key = h.resource_key
            AND j.seq > h.seq
        ))
    THEN
        o_took := 'general';
        RETURN NEXT;
        RETURN;
    END IF;
    o_fence := nextval('armguard_fence');
    v_keys_json := CAST(to_json(v_keys) AS text);
    o_keys := v_keys_json;
    o_expires_at := v_now + p_ttl;
    INSERT INTO leases (id, owner, fence, keys, expires_at, created_at)
    VALUES (p_lease_id, p_owner, o_fence, v_keys_json, o_expires_at, v_now);
    -- Two tries whose jobs reach one key only through learned scopes pass the checks above
    -- side by side; the primary key makes the second wait for the first and then write no
    -- row for that key, and the second hands the claim to the rules, having written nothing.
    INSERT INTO lease_keys (key, lease_id, fence)
    SELECT k, p_lease_id, o_fence FROM unnest(v_keys) AS u(k)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written < cardinality(v_keys) THEN
        DELETE FROM leases l WHERE l.id = p_lease_id;
        o_took := 'general';
        o_fence := NULL;
        o_keys := NULL;
        o_expires_at := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO events (job_id, line) VALUES (
        h.id,
        '{{"attempt":0,"detail":{{"batch":1,"keys":' || v_keys_json
        || '}},"event":"claimed","fence":' || o_fence
        || ',"job_id":' || CAST(to_json(h.id) AS text)
        || ',"resource_id":' || CAST(to_json(CAST(h.spec AS json) ->> 'resource_id') AS text)
        || ',"ts":' || CAST(to_json(COALESCE(p_ts, to_char(
            to_timestamp(v_now) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '0Z'))
            AS text)
        || ',"writer":' || CAST(to_json(CAST(h.spec AS json) ->> 'writer') AS text) || '}}'
    );
    UPDATE jobs j SET state = 'running', lease_id = p_lease_id, updated_at = v_now
    WHERE j.seq = h.seq
    RETURNING j.seq, j.id, j.spec, j.state, j.attempts, j.outcome, j.kind, j.reason, j.result,
        j.created_at, j.updated_at
    INTO o_seq, o_id, o_spec, o_state, o_attempts, o_outcome, o_kind, o_reason, o_result,
        o_created_at, o_updated_at;
    o_took := 'claimed';
    RETURN NEXT;
END
$fn$
"""

_SUBMIT_GATE_TRIGGER = "jobs_submit_gate"


def _submit_gate_fn(store_lock: int, submits_lock: int) -> str:
    return f"""
CREATE OR REPLACE FUNCTION armguard_submit_gate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({store_lock});
    PERFORM pg_advisory_xact_lock_shared({submits_lock});
    RETURN NULL;
END
$fn$
"""


_SUBMIT_GATE = f"""
CREATE OR REPLACE TRIGGER {_SUBMIT_GATE_TRIGGER} BEFORE INSERT ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION armguard_submit_gate()
"""

# Server time when no clock is injected (the parameter is then None); see the module docstring.
_NOW_SQL = (
    "COALESCE(CAST(? AS DOUBLE PRECISION),"
    " CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION))"
)

_DDL = """
CREATE TABLE IF NOT EXISTS armguard_schema (version INTEGER NOT NULL);
CREATE SEQUENCE IF NOT EXISTS armguard_fence;
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    resource_key TEXT NOT NULL,
    spec TEXT NOT NULL,
    keys TEXT NOT NULL,
    barrier INTEGER NOT NULL,
    idem_key TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    kind TEXT,
    reason TEXT,
    result TEXT NOT NULL DEFAULT '{}',
    lease_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_queued_resource ON jobs (resource_key, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running_lease ON jobs (lease_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_done_resource ON jobs (resource_key, seq) WHERE state = 'done';
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    fence BIGINT NOT NULL UNIQUE,
    keys TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
CREATE TABLE IF NOT EXISTS lease_keys (
    key TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
    fence BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_keys_lease ON lease_keys (lease_id);
CREATE TABLE IF NOT EXISTS events (
    pos BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, pos);
CREATE TABLE IF NOT EXISTS learned_scopes (
    key TEXT NOT NULL,
    other TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen INTEGER NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key, other)
);
CREATE TABLE IF NOT EXISTS job_keys (
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS job_keys_seq ON job_keys (seq)
"""

# Fills ``job_keys`` with each new job's keys other than its own resource, once per INSERT
# statement (a submit_many of a thousand jobs runs it once). In the database, so that every
# armguard that submits — an older one still running during an upgrade too — keeps the index.
_OTHER_KEYS_FN = """
CREATE OR REPLACE FUNCTION armguard_other_keys() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO job_keys (key, seq)
    SELECT e.key, n.seq FROM armguard_new_jobs n,
        json_array_elements_text(CAST(n.keys AS json)) AS e(key)
    WHERE n.keys <> '["' || n.resource_key || '"]' AND e.key <> n.resource_key
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$
"""
_OTHER_KEYS_TRIGGER = """
CREATE OR REPLACE TRIGGER jobs_other_keys AFTER INSERT ON jobs
REFERENCING NEW TABLE AS armguard_new_jobs FOR EACH STATEMENT
EXECUTE FUNCTION armguard_other_keys()
"""
# Schema 1 → 2: the other keys of the jobs that can still be claimed (a done job never runs
# again).
_MIGRATE_TO_2 = """
INSERT INTO job_keys (key, seq)
SELECT e.key, j.seq FROM jobs j, json_array_elements_text(CAST(j.keys AS json)) AS e(key)
WHERE j.state <> 'done' AND e.key <> j.resource_key
ON CONFLICT DO NOTHING
"""


def _has_rows(cur: psycopg.Cursor[Any]) -> bool:
    """Whether the cursor's last statement returned rows (cheaper than ``description``)."""
    res = cur.pgresult
    return res is not None and res.status == pq.ExecStatus.TUPLES_OK


def _hung_up(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server has hung up on a connection that it owes nothing now: the store's
    between calls (every call ends with its results read, and it listens on no channel), or
    the listener once its notifications are read. Anything readable then is what a server
    sends as it ends a session (a restart's or a terminated backend's FATAL, then end of
    file), so a connection that died while idle costs no call; at worst a false alarm (a
    notification that has just arrived) costs a reconnect."""
    try:
        fd = conn.pgconn.socket
        if hasattr(select, "poll"):  # not limited to descriptors below FD_SETSIZE
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError, psycopg.Error):
        return True


# Below this many jobs a plan made on a near-empty table costs nothing noticeable.
_REPLAN_FROM = 256


def _pg(sql: str, plans: str, params: Sequence[Any] = ()) -> str:
    """psycopg's placeholders for ``?``: a list travels as a binary array (``%b``), whose
    elements need no quoting — a claim's or completion's event lines as a text array were
    escaped one by one, most of the client's time in a 64-job claim."""
    if not any(isinstance(p, list) for p in params):
        return sql.replace("?", "%s") + plans
    parts = sql.split("?")
    if len(parts) != len(params) + 1:  # not ours to reinterpret: let psycopg report it
        return sql.replace("?", "%s") + plans
    marks = ["%b" if isinstance(p, list) else "%s" for p in params]
    return "".join(part + mark for part, mark in zip(parts, [*marks, ""], strict=True)) + plans


def _together(statements: Sequence[Statement], guard: Statement | None = None) -> list[Statement]:
    """Statements that do not read one another's writes, as one: each but the last becomes a
    data-modifying CTE, which PostgreSQL always runs to completion, all on one snapshot; the
    last (or, with a guard, ``SELECT`` of the guard, so that it is evaluated) is the main
    statement. A guard that raises aborts the whole statement, so nothing is written."""
    ctes: list[str] = []
    params: list[Any] = []
    if guard is not None:
        ctes.append(f"armguard_ok AS (SELECT armguard_fenced({guard[0]}) AS ok)")
        params += guard[1]
    body = list(statements)
    main: Statement = ("SELECT ok FROM armguard_ok", ()) if guard is not None else body.pop()
    for i, (sql, stmt_params) in enumerate(body):
        ctes.append(f"armguard_s{i} AS ({sql})")
        params += stmt_params
    if not ctes:
        return [main]
    main_sql, main_params = main
    # A main statement with a WITH of its own joins its CTEs to ours.
    rest = main_sql[len("WITH ") :] if main_sql.startswith("WITH ") else None
    sql = f"WITH {', '.join(ctes)}, {rest}" if rest else f"WITH {', '.join(ctes)} {main_sql}"
    return [(sql, [*params, *main_params])]


class _PgTx:
    """Statements of one implicit transaction in pipeline mode. ``hold``: results are fetched
    with a flush request, which keeps the transaction (and its lock) open until ``finish``
    syncs; otherwise every statement is synced, i.e. committed, on its own (autocommit reads).
    A statement whose result is not needed (``run``) is only queued and travels with the next
    one whose rows are, so a transaction costs a round trip per *decision*."""

    __slots__ = ("_conn", "_cur", "_guarded", "_hold", "_pipe", "_plans", "committed", "synced")

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        cur: psycopg.Cursor[Any],
        pipe: psycopg.Pipeline | None,
        *,
        hold: bool,
        plans: str = "",
    ) -> None:
        self._conn = conn
        self._cur = cur
        self._pipe = pipe
        self._hold = hold
        self._plans = plans
        self._guarded = False
        self.committed = False
        self.synced = False
        """The Sync that ends the transaction was sent: whatever it raised, the server has
        committed or rolled back, and a ROLLBACK now would be one outside any transaction
        (which, in pipeline mode, makes psycopg drop its prepared statements out of order)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._refusals():
            self._cur.execute(_pg(sql, self._plans, params), params)
            if self._pipe is None or not self._hold:
                if self._pipe is not None:
                    self._pipe.sync()
                return self._cur.fetchall() if _has_rows(self._cur) else []
            return self._cur.fetchall()  # a flush request: the transaction stays open

    def guarded(self, statements: Sequence[Statement], guard: Statement) -> None:
        # One statement whose guard raises AG001 when false; queued like ``run``, so a refusal
        # surfaces at the next round trip (the pipeline skips everything after it).
        sql, params = _together(statements, guard)[0]
        self._guarded = True
        self.run(sql, params)

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            if self._guarded and getattr(exc, "sqlstate", None) == _REFUSED:
                raise GuardRefused from exc
            raise

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._refusals():  # an earlier statement's error may surface at any later one
            self._cur.execute(_pg(sql, self._plans, params), params)
            if self._pipe is not None and not self._hold:
                self._pipe.sync()

    def finish(
        self, statements: Sequence[Statement], *, together: bool = False
    ) -> list[tuple[Any, ...]]:
        """The statements and the commit (a Sync) in one round trip; the last one's rows."""
        with self._refusals():
            for sql, params in _together(statements) if together and statements else statements:
                self._cur.execute(_pg(sql, self._plans, params), params)
            if self._pipe is not None:
                self.synced = True
                self._pipe.sync()
        self.committed = True
        return self._cur.fetchall() if _has_rows(self._cur) else []


class PostgresStore(SqlStore):
    def __init__(
        self,
        conninfo: str,
        *,
        clock: Clock | None = None,
        schema: str = "armguard",
        synchronous_commit: str | None = None,
    ) -> None:
        """``clock``: None or the plain :class:`SystemClock` — leases run on the server's
        clock (see the module docstring); any other clock is used as given (tests).
        ``synchronous_commit`` (None: the server's setting) is an explicit opt-in to faster,
        less durable commits; :mod:`.stores` documents what it risks."""
        super().__init__(None if clock is None or type(clock) is SystemClock else clock)
        if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
            raise ValueError(
                f"schema must be a lower-case SQL identifier (letters, digits, _), not {schema!r}"
            )
        if synchronous_commit is not None and synchronous_commit not in SYNCHRONOUS_COMMIT:
            raise ValueError(
                f"synchronous_commit must be one of {', '.join(SYNCHRONOUS_COMMIT)} or None,"
                f" not {synchronous_commit!r}"
            )
        self.schema = schema
        self._conninfo = conninfo  # kept for reconnecting and listening; never printed
        self._synchronous_commit = synchronous_commit
        self._notify_channel = f"armguard_{schema}"
        self._listener: psycopg.Connection[Any] | None = None
        self._where = f"{redact(conninfo)} (schema {schema})"
        self._lock = threading.Lock()
        self._lock_key = _lock_key(f"armguard:{schema}")
        self._submits_key = _lock_key(f"armguard:{schema}:submits")  # see _CLAIM_HEAD_FN
        # Set by close() alone: a lost connection is replaced, a closed store stays closed.
        self._closed = False
        self.reconnects = 0
        """How many times this handle replaced a lost connection (the listener's aside)."""
        with _groups_lock:
            group_key = (conninfo, schema, synchronous_commit)
            group = _groups.get(group_key)
            if group is None:
                group = _groups[group_key] = submit_group(_SUBMIT_LEADERS)
            self._submit_group = group
        self._conn = self._connect()
        try:
            self._create_schema()
        except BaseException:
            self._conn.close()
            raise
        self._plans = ""  # appended to every statement's text; see _jobs_reached
        self._discard_plans = False
        self._head_skips = 0  # claims left that skip the head claim; see _claim_head_lock
        self.claims_in_server = 0
        """How many leases ``armguard_claim_head_v2`` made on this handle: claims of the common
        case, decided in one transaction that no round trip to this client holds open, beside
        other such claims."""
        self._plans_at: int | None = None
        self._attach()

    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection with this store's session settings, which a reconnect must
        restore: they are the session's, not the server's."""
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {redact(self._conninfo)}: {exc}"
            ) from exc
        try:
            with self._errors():
                if self._synchronous_commit is not None:
                    conn.execute(
                        "SELECT set_config('synchronous_commit', %s, false)",
                        (self._synchronous_commit,),
                    )
                conn.execute("SET random_page_cost = 1.1")  # see the module docstring
                # A schema that does not exist yet (a new store) is skipped until it does.
                conn.execute("SELECT set_config('search_path', %s, false)", (self.schema,))
        except BaseException:
            conn.close()
            raise
        return conn

    def _attach(self) -> None:
        # Every statement is prepared on first use: their texts are few and stable.
        self._conn.prepare_threshold = 0
        # The connection stays in pipeline mode: entering and leaving it per transaction would
        # cost a Sync round trip each time.
        self._stack = ExitStack()
        self._pipe = self._stack.enter_context(self._conn.pipeline())
        # One cursor for every statement (calls take turns on the connection anyway).
        self._cur = self._conn.cursor()

    def _detach(self) -> None:
        with suppress(psycopg.Error):
            self._stack.close()  # leave pipeline mode cleanly before closing
        self._conn.close()

    def _jobs_reached(self, seq: int) -> None:
        # A prepared statement's generic plan is made once, on the table sizes of that moment,
        # and kept until an ANALYZE. Plans made on a new, near-empty store read every queued
        # job and sort them, or walk the wrong index; once thousands were queued a claim took
        # 2-3 ms instead of 0.8 until autovacuum came by. New texts make psycopg prepare
        # afresh (the old ones age out of its cache, which deallocates them), at most once
        # per fourfold growth, so a connection re-plans log4(jobs) times in its life.
        if self._plans_at is None:
            self._plans_at = seq
        elif seq >= max(4 * self._plans_at, _REPLAN_FROM):
            self._plans_at = seq
            self._plans = f" /* armguard plans for {seq} jobs */"
            # The claim function's statements are planned inside the server, where no new
            # text reaches them: they are re-planned at their next use.
            self._discard_plans = True

    @property
    def server_time(self) -> bool:
        """True when leases run on the server's clock (no clock injected)."""
        return self._clock is None

    def _create_schema(self) -> None:
        # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog; the init lock
        # makes workers starting together take turns.
        with self._lock, self._errors(), self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_INIT_LOCK,))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            tx = _PgTx(self._conn, cur, None, hold=False)
            # CREATE INDEX IF NOT EXISTS still locks its table, which would deadlock with
            # running claims; a store whose schema is in place runs no DDL for its tables.
            exists, fenced, claims_head, gated = tx.rows(
                "SELECT to_regclass('armguard_schema') IS NOT NULL,"
                " to_regprocedure('armguard_fenced(boolean)') IS NOT NULL,"
                f" to_regprocedure('{_CLAIM_HEAD_SIG}') IS NOT NULL,"
                " EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('jobs')"
                f" AND tgname = '{_SUBMIT_GATE_TRIGGER}')"
            )[0]
            found = tx.rows("SELECT version FROM armguard_schema") if exists else []
            if found and int(found[0][0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._where} has store schema version {found[0][0]}; this armguard"
                    f" understands up to {SCHEMA_VERSION}: upgrade armguard"
                )
            if not fenced:
                cur.execute(_FENCED_FN)  # one statement (its body holds semicolons)
            if not claims_head:
                cur.execute(_CLAIM_HEAD_FN)
            if found and int(found[0][0]) == SCHEMA_VERSION:
                if not gated:
                    # A schema made before the gate: no claim or submit may be halfway through
                    # while the trigger is added (the store lock, then the table, as they take
                    # them).
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                    self._add_submit_gate(cur)
                return
            if found:
                # An upgrade: no claim or submit of a running older armguard may be halfway
                # through while the index is built (the store lock, then the tables, in the
                # order every claim takes them).
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            for stmt in split_statements(_DDL):
                tx.rows(stmt)
            cur.execute(_OTHER_KEYS_FN)
            cur.execute(_OTHER_KEYS_TRIGGER)
            self._add_submit_gate(cur)
            if not found:
                tx.rows("INSERT INTO armguard_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                tx.rows(_MIGRATE_TO_2)
                tx.rows("UPDATE armguard_schema SET version = ?", (SCHEMA_VERSION,))

    def _add_submit_gate(self, cur: psycopg.Cursor[Any]) -> None:
        cur.execute(_submit_gate_fn(self._lock_key, self._submits_key))
        cur.execute(_SUBMIT_GATE)

    def _ready(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed")
        # Without the lock, which a call of another thread sharing this handle may hold for a
        # while: a submit that would only join a group must not wait for it. A connection known
        # to be lost is replaced now, so that a failure to reconnect is this submit's alone.
        if self._conn.closed:
            with self._lock:
                self._live()

    def _live(self) -> None:
        """Before a call sends anything (under the lock): a closed store raises; a connection
        that is gone is replaced, and if the server cannot be reached the call raises
        :class:`StoreError` having sent nothing.

        Only this moment is safe for a retry. A call whose connection dies after it has sent
        its statements raises and is not sent again on a new connection: its transaction may
        have committed or not. Re-running a submit could queue its jobs twice (only an
        idempotency key makes that safe, and a group commit mixes jobs with and without keys),
        a claim could take a second lease, and a completion that did commit would be refused
        as a lost lease. So the caller decides (a worker's lease expires and is taken over;
        a submitter resubmits under its idempotency key), and the handle connects again on
        the next call."""
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed")
        if self._conn.closed or _hung_up(self._conn):
            self._detach()
            # If this raises, the old connection stays closed: the next call tries again.
            self._conn = self._connect()
            self._attach()
            self.reconnects += 1

    @contextmanager
    def _guard(self) -> Iterator[None]:
        self._live()
        try:
            yield
        except psycopg.OperationalError as exc:
            # Lost after the call was sent: it is not sent again (see _live), so say so.
            unknown = (
                "; the connection was lost, so whether this call took effect is unknown"
                if self._conn.closed
                else ""
            )
            raise StoreError(f"PostgreSQL at {self._where} failed: {exc}{unknown}") from exc

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL at {self._where} failed: {exc}") from exc

    @contextmanager
    def _write(
        self, lock: WriteLock = "exclusive", notify: Change | None = None
    ) -> Iterator[_PgTx]:
        head = self._head(lock, notify)
        with self._lock, self._guard():
            cur = self._cur
            tx = _PgTx(self._conn, cur, self._pipe, hold=True, plans=self._plans)
            try:
                if self._discard_plans:
                    cur.execute("DISCARD PLANS")
                    self._discard_plans = False
                if head is not None:  # queued: travels with the first statement
                    cur.execute(*head)
                yield tx
                if not tx.committed:
                    self._pipe.sync()  # commits (a claim that found nothing wrote nothing)
            except BaseException:
                if not tx.committed and not tx.synced:
                    self._rollback(cur)
                raise

    def _head(self, lock: WriteLock, notify: Change | None) -> tuple[str, list[Any]] | None:
        """A transaction's first statement: the store lock, and the NOTIFY that is delivered at
        its commit (and dropped on rollback); None when it needs neither."""
        head: list[str] = []
        params: list[Any] = []
        if lock != "none":
            head.append(_LOCK_SQL[lock])
            params.append(self._lock_key)
        if notify is not None:
            head.append("pg_notify(%s, %s)")
            params += [self._notify_channel, notify]
        return ("SELECT " + ", ".join(head), params) if head else None

    def _rollback(self, cur: psycopg.Cursor[Any]) -> None:
        # Ends the implicit transaction without committing (after an error the server has
        # already rolled it back). If the connection is gone, the server has rolled back.
        with suppress(psycopg.Error):
            cur.execute("ROLLBACK")
        with suppress(psycopg.Error):
            self._pipe.sync()

    def _once(
        self,
        statements: Sequence[Statement],
        *,
        lock: WriteLock,
        guard: Statement | None = None,
        notify: Change | None = None,
        together: bool = False,
    ) -> list[tuple[Any, ...]] | None:
        if together and (statements or guard is not None):
            statements, guard = _together(statements, guard), None
        head = self._head(lock, notify)
        with self._lock, self._guard():
            cur = self._cur
            failed: psycopg.Error | None = None
            try:
                if head is not None:
                    cur.execute(*head)
                if guard is not None:
                    guard_sql = f"SELECT armguard_fenced({guard[0]})"
                    cur.execute(_pg(guard_sql, self._plans, guard[1]), guard[1])
                for sql, stmt_params in statements:
                    cur.execute(_pg(sql, self._plans, stmt_params), stmt_params)
            except psycopg.Error as exc:
                failed = exc  # a server error may surface at any later statement; Sync below
            except BaseException:
                self._rollback(cur)  # nothing was synced: end the transaction unwritten
                raise
            try:
                self._pipe.sync()
            except psycopg.Error as exc:
                failed = failed or exc
            if failed is not None:
                if getattr(failed, "sqlstate", None) == _REFUSED:
                    return None  # the pipeline skipped the rest and the server rolled back
                raise failed
            if together:
                return []
            # The cursor holds the last statement's result (results arrive in order).
            return cur.fetchall() if statements and _has_rows(cur) else []

    @contextmanager
    def _read(self) -> Iterator[_PgTx]:
        with self._lock, self._guard():
            yield _PgTx(self._conn, self._cur, self._pipe, hold=False, plans=self._plans)

    # Drawn with the claim's first statement, saving a round trip; a poll that finds nothing
    # leaves a gap in the sequence, which fencing does not mind (tokens only need to grow).
    _fence_expr = "nextval('armguard_fence')"
    _now_sql = _NOW_SQL
    _rows_per_insert = None  # arrays: one INSERT carries any number of rows

    def _lock_from(self, lock: WriteLock, notify: Change | None) -> Statement | None:
        # OFFSET 0 keeps the subquery a plan node of its own: its row (the lock taken) exists
        # before the INSERT computes the first row's identity from it. Only for locks whose holders
        # may read a snapshot from before the lock: a shared one (submits).
        if lock != "shared":
            return None
        head, params = [_LOCK_SQL[lock]], [cast(Any, self._lock_key)]
        if notify is not None:
            head.append("pg_notify(%s, %s)")
            params += [self._notify_channel, notify]
        return (
            f"(SELECT {', '.join(head)} OFFSET 0) AS armguard_lock".replace("%s", "?"),
            params,
        )

    def _next_fence(self, tx: Tx) -> int:
        return int(tx.rows("SELECT nextval('armguard_fence')")[0][0])

    def _claim_head_lock(self) -> WriteLock | None:
        # A queue whose heads have followers (one resource's burst) makes the function hand
        # over claim after claim, each time a transaction spent: after a hand-over the next
        # few claims go straight to the shared rules.
        if self._head_skips > 0:
            self._head_skips -= 1
            return None
        return "head"

    def _claim_head(
        self, tx: Tx, owner: str, ttl: float, max_batch: int, lines: list[tuple[str, str]]
    ) -> tuple[bool, Lease | None]:
        now = self._now()
        lease_id = str(uuid.uuid4())
        # The call and the commit travel together: the server runs the lock, the carried
        # completion, the call and the commit without waiting for this client, so the lock is
        # never held while a worker waits for a core. A hand-over then costs a transaction.
        found = tx.finish(
            [
                *self._insert_events(lines),
                (
                    f"SELECT * FROM {_CLAIM_HEAD}(?, ?, ?, ?, ?, ?, ?)",
                    (
                        owner,
                        ttl,
                        now,
                        isoformat(now) if now is not None else None,
                        lease_id,
                        max_batch,
                        self._submits_key,
                    ),
                ),
            ]
        )
        if not found:
            # The function always answers one row: none means the connection went away with
            # the answer (a server restart), which the worker treats as any outage.
            raise StoreError(
                f"PostgreSQL at {self._where} did not answer the claim; the connection was"
                " lost, so whether this call took effect is unknown"
            )
        took, max_seq, fence, keys, expires_at, *job = found[0]
        if max_seq is not None:
            self._jobs_reached(int(max_seq))
        if took == "general":
            self._head_skips = _HEAD_SKIPS
            return False, None
        if took == "none":
            return True, None
        self.claims_in_server += 1
        return True, Lease(
            id=lease_id,
            owner=owner,
            keys=tuple(json.loads(keys)),
            fence=int(fence),
            expires_at=float(expires_at),
            jobs=(_job(job),),
        )

    def _in_query(self, column: str, query: str) -> str:
        # An array made once (an InitPlan) is an index condition: the planner probes the
        # index per value instead of hashing a subquery it expects to be large and scanning
        # a whole range of jobs against it.
        return f"{column} = ANY(ARRAY({query}))"

    def _in(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list[Any]]:
        if len(values) == 1:  # the common case, and a second stable text: no array to build
            return f"{column} = ?", list(values)
        return f"{column} = ANY(CAST(? AS {sql_type}[]))", [list(values)]

    def _rows_cte(
        self, name: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Statement:
        arrays = ", ".join(f"CAST(? AS {t}[])" for t in types)
        return (
            f"{name}({', '.join(columns)}) AS (SELECT * FROM unnest({arrays}))",
            [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in columns],
        )

    def _insert(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> list[Statement]:
        if len(rows) <= 1:  # the common case, and a second stable text: no array to build
            return super()._insert(table, columns, types, rows)
        names = ", ".join(columns)
        arrays = ", ".join(f"CAST(? AS {t}[])" for t in types)
        return [
            (
                f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays})"
                f" WITH ORDINALITY AS v({names}, ord) ORDER BY ord",
                [list(col) for col in zip(*rows, strict=True)],
            )
        ]

    def _changed(self, change: Change) -> None:
        pass  # the NOTIFY that rode in the transaction reaches this process's listeners too

    def watch_changes(self, timeout: float) -> Change | None:
        # Every submit, completion and release NOTIFYs the schema's channel in its own
        # transaction, so the notification arrives exactly when its commit is visible.
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed")
        listener = self._listener
        try:
            if listener is None or listener.closed:
                return self._listen()
            seen: set[str] = set()
            try:
                for note in listener.notifies(timeout=max(0.0, timeout), stop_after=1):
                    seen.add(note.payload)
                # Still readable with its notifications read: the server hung up (a short wait
                # reads its goodbye as a notice, and stops before the end of file behind it).
                gone = not seen and _hung_up(listener)
            except psycopg.OperationalError:
                gone = True
            if gone:
                # Its connection died: a restart, a dropped connection, perhaps long before
                # this call. Listening again changes nothing on the server, so unlike a store
                # call it is safe to repeat at once; if the server is still away this raises.
                listener.close()
                self._listener = None
                return self._listen()
            if not seen:
                return None
            # Everything else committed by now belongs to the same answer: "freed" wins
            # (keys may be free) however the commits were ordered, and a burst of commits
            # wakes the caller once, not once per commit. A notification is forwarded
            # to us asynchronously, so one whose commit has returned may still be in
            # flight; the listener's backend sends every pending one before it answers
            # a query, and psycopg keeps those for notifies().
            listener.execute("SELECT 1")
            for note in listener.notifies(timeout=0.0):
                seen.add(note.payload)
            return "submitted" if seen == {"submitted"} else "freed"
        except psycopg.Error as exc:
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            raise StoreError(f"PostgreSQL at {self._where} failed: {exc}") from exc

    def _listen(self) -> Change:
        listener = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        try:
            listener.execute(f'LISTEN "{self._notify_channel}"')
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        if self._closed:  # close() ran meanwhile, and may have looked before the line above
            self._listener = None
            listener.close()
            raise StoreError(f"the store at {self._where} is closed")
        # Whatever committed before we listened went unannounced: say keys may be free.
        return "freed"

    def drop_schema(self) -> None:
        """Delete this store's schema and everything in it (tests, decommissioning)."""
        with self._lock, self._guard():
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self._pipe.sync()

    def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            self._detach()
