"""The Activity Log: ARM's Administrative events, recorded as EventData and queried by ``$filter``.

Every write, delete or action leaves a start event and an end event whose shapes match what
``az monitor activity-log list`` and ``azure-mgmt-monitor`` return from real ARM, including the
failure body serialised into ``properties.statusMessage``, because diagnostics read exactly that.

The ``$filter`` grammar is ARM's: a conjunction of ``field op 'value'`` clauses with a mandatory
``eventTimestamp ge``. It is parsed by a small tokenizer and parser so that a malformed filter is
reported by what is wrong with it, as ARM's 400 does. One deliberate leniency: ARM allows at most
one of the resource selectors (group, URI, provider, correlation id) per query; here they may be
combined and are ANDed, which never returns an event ARM would not.
"""

from __future__ import annotations

import bisect
import copy
import functools
import json
import random
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from armguard.arm.errors import ArmError, reason_phrase
from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.arm.quoting import scan_quoted
from armguard.clock import Clock, isoformat
from armguard.emulator.event_bounds import EVENT_OVERHEAD, clip, clip_error, event_cost

__all__ = ["EVENT_FIELDS", "MAX_BYTES", "MAX_EVENTS", "STATUSES", "ActivityLog", "parse_timestamp"]

# Status values an event may carry: ARM's documented ones plus Accepted for 202 hand-offs.
STATUSES: dict[str, str] = {
    "started": "Started",
    "accepted": "Accepted",
    "in progress": "In Progress",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "active": "Active",
    "resolved": "Resolved",
}

EVENT_FIELDS: tuple[str, ...] = (
    "authorization",
    "caller",
    "channels",
    "claims",
    "correlationId",
    "description",
    "eventDataId",
    "eventName",
    "category",
    "eventTimestamp",
    "httpRequest",
    "id",
    "level",
    "operationId",
    "operationName",
    "properties",
    "resourceGroupName",
    "resourceProviderName",
    "resourceType",
    "resourceId",
    "status",
    "subStatus",
    "submissionTimestamp",
    "subscriptionId",
    "tenantId",
    "relatedEvents",
)
_FIELD_BY_LOWER = {f.lower(): f for f in EVENT_FIELDS}

# .NET ticks (100 ns since 0001-01-01) at the Unix epoch: ARM's event ids end in ticks.
_EPOCH_TICKS = 621_355_968_000_000_000
_DEFAULT_TENANT = "00000000-0000-0000-0000-000000000000"


def _ticks(ts: float) -> int:
    return _EPOCH_TICKS + round(ts * 10_000_000)


_FRACTION_RE = re.compile(r"\.(\d+)")


def parse_timestamp(text: str) -> float:
    """ISO 8601 (a date, or a time with up to 7 fractional digits and ``Z`` or an offset) to
    epoch seconds. Times without a zone are UTC, as ARM reads them. Raises ValueError."""
    raw = text.strip()
    # Python reads at most 6 fractional digits; ARM writes 7.
    raw = _FRACTION_RE.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), raw, count=1)
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _words(camel: str) -> str:
    """``virtualNetworks`` → ``Virtual Network``: the singular, spaced form used in
    ``localizedValue`` texts."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", camel)
    words = spaced[:1].upper() + spaced[1:]
    if words.endswith("ies"):
        return words[:-3] + "y"
    if words.endswith("s") and not words.endswith("ss"):
        return words[:-1]
    return words


@functools.lru_cache(maxsize=1024)
def _localized_operation(operation_name: str) -> str:
    parts = operation_name.split("/")
    if len(parts) < 3:
        return operation_name
    verb = parts[-1].lower()
    if verb == "action" and len(parts) >= 4:
        return f"{_words(parts[-2])} {_words(parts[-3])}"
    noun = _words(parts[-2])
    return {
        "write": f"Create or Update {noun}",
        "delete": f"Delete {noun}",
        "read": f"Get {noun}",
    }.get(verb, operation_name)


# One stored event is a plain tuple ``(ts, seq, cost, fields, loaded)``. Writes record two or
# three events each and the log is read far less often, so an event keeps the flat tuple of
# strings and numbers fixed at record time (``fields``, see ActivityLog._prepare) and its dict
# is built only for the page a query hands out, never kept. A tuple holding only strings,
# numbers and such tuples is one the garbage collector stops tracking, so the 100,000 events
# the log keeps add nothing to a full collection's walk (an object per event would: ~130 ms
# per full collection at 1k resources, before). An event loaded from a dump keeps the dict it
# came as (``loaded``; ``fields`` is None). ``cost`` is what the event is charged against the
# byte budget.
_Stored = tuple[float, int, int, tuple[Any, ...] | None, dict[str, Any] | None]
_TS: Final = 0
_SEQ: Final = 1
_COST: Final = 2
_FIELDS: Final = 3
_LOADED: Final = 4


def _build(stored: _Stored) -> dict[str, Any]:
    """A fresh copy of the event's dict: the caller may keep or change it."""
    fields = stored[_FIELDS]
    if fields is not None:
        return _build_event(fields)
    return copy.deepcopy(stored[_LOADED]) or {}


def _subscription(stored: _Stored) -> str:
    fields = stored[_FIELDS]
    if fields is not None:
        return str(fields[1])
    event = stored[_LOADED] or {}
    value = event.get("subscriptionId")
    return value if isinstance(value, str) else ""


def _value(stored: _Stored, key: str) -> Any:
    """The event's value for the filter field ``key`` (lower-cased)."""
    fields = stored[_FIELDS]
    if fields is None:
        return _EQ_FIELDS[key][1](stored[_LOADED] or {})
    return fields[_FIELD_INDEX[key]]


def _group(stored: _Stored) -> str:
    """The lower-cased resource group the event is about ('' for none)."""
    found = _value(stored, "resourcegroupname")
    return found.lower() if isinstance(found, str) else ""


# Where a filter field's value sits in a recorded event's tuple (see ActivityLog._prepare).
_FIELD_INDEX = {
    "resourceuri": 4,
    "resourceid": 4,
    "correlationid": 7,
    "caller": 2,
    "status": 5,
    "resourcegroupname": 18,
    "resourceprovider": 19,
}


class _Series:
    """Events in (time, record order), oldest first, with a moving head so dropping the
    oldest is O(1) and a time bound is a binary search."""

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[_Stored] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def add(self, stored: _Stored) -> None:
        items = self.items
        if len(items) == self.head or _position(items[-1]) <= _position(stored):
            items.append(stored)
        else:
            # A clock set back: keep the series sorted by time.
            at = bisect.bisect_right(items, _position(stored), lo=self.head, key=_position)
            items.insert(at, stored)

    def drop(self, stored: _Stored) -> None:
        items = self.items
        if self.head < len(items) and items[self.head] is stored:
            self.head += 1
            # Dropped events stay referenced until the list is cut: cut it once they are half
            # of it, so a series holds at most as many dropped events as live ones (a per-group
            # series is small, and a fixed floor would keep thousands alive in each).
            if self.head * 2 > len(items):
                del items[: self.head]
                self.head = 0
            return
        for n in range(self.head, len(items)):
            if items[n] is stored:
                del items[n]
                return

    def oldest(self) -> _Stored:
        return self.items[self.head]

    def live(self) -> list[_Stored]:
        return self.items[self.head :]

    def newest_first(
        self, start: float, end: float | None, before: tuple[float, int] | None
    ) -> Iterator[_Stored]:
        """Events with ``start <= ts <= end`` and a position before ``before``, newest first."""
        items = self.items
        lo = bisect.bisect_left(items, start, lo=self.head, key=_ts)
        hi = len(items) if end is None else bisect.bisect_right(items, end, lo=lo, key=_ts)
        if before is not None:
            hi = min(hi, bisect.bisect_left(items, before, lo=lo, hi=hi, key=_position))
        for n in range(hi - 1, lo - 1, -1):
            yield items[n]


def _ts(stored: _Stored) -> float:
    return stored[_TS]


def _position(stored: _Stored) -> tuple[float, int]:
    return (stored[_TS], stored[_SEQ])


MAX_EVENTS = 100_000
"""Events the log keeps by default (the oldest go first)."""
MAX_BYTES = 64 * 1024 * 1024
"""Estimated bytes of events the log keeps by default (see :mod:`.event_bounds`): ~50,000
events of ordinary writes (~1.3 KB each), fewer of a fuzzer's large ones. The cap that binds
first wins."""


class ActivityLog:
    """A bounded, thread-safe, in-memory Activity Log for one emulator.

    Past ``max_events`` events, or past ``max_bytes`` of their estimated size, the oldest
    events are dropped, as a retention window would. The newest event is always kept.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
        tenant_id: str = _DEFAULT_TENANT,
        seed: int | None = None,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._clock = clock
        self._tenant = tenant_id
        self._max = max_events
        self._max_bytes = max_bytes
        self._bytes = 0
        self._events = _Series()
        # The same events by lower-cased resource group: a query for one group (or for a
        # resource in it) reads that group's events, not the whole log's.
        self._groups: dict[str, _Series] = {}
        self._seq = 0
        self._lock = threading.Lock()
        # Event ids come from a seedable generator so a seeded emulator run is reproducible.
        self._rng = random.Random(seed)

    @property
    def max_events(self) -> int:
        return self._max

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def bytes(self) -> int:
        """The estimated bytes of the events kept (what the byte budget is charged)."""
        with self._lock:
            return self._bytes

    def _uuid(self) -> str:
        return _uuid4_text(self._rng.getrandbits(128))

    def _prepare(
        self,
        *,
        subscription: str,
        caller: str,
        operation_name: str,
        resource_id: str,
        status: str,
        http_status: int | None,
        correlation_id: str,
        operation_id: str,
        method: str,
        uri: str,
        client_request_id: str | None = None,
        error: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        client_ip: str = "127.0.0.1",
        service_request_id: str | None = None,
    ) -> tuple[Any, ...]:
        """Validate an event and fix everything that must be taken at record time (the
        clock, the ids from the seeded generator, copies of the caller's values, each
        clipped to :data:`~.event_bounds.MAX_CHARS`)."""
        status_value = STATUSES.get(status.strip().lower())
        if status_value is None:
            raise ValueError(
                f"status '{status}' is not an Activity Log status; use one of "
                f"{', '.join(STATUSES.values())}"
            )
        if http_status is not None and not 100 <= http_status <= 599:
            raise ValueError(f"http_status {http_status} is not an HTTP status code")
        ts = self._clock.now()
        with self._lock:
            event_id = self._uuid()
            request_id = clip(service_request_id) if service_request_id else self._uuid()
        error_text = None if error is None else clip_error(error)
        # Parsed once here and shared: a query filters on them and every event repeats them.
        group, provider, rtype = (sys.intern(clip(v)) for v in _resource_facts(resource_id))
        return (
            ts,
            clip(subscription),
            clip(caller),
            clip(operation_name),
            clip(resource_id),
            status_value,
            http_status,
            clip(correlation_id),
            clip(operation_id),
            clip(method),
            clip(uri),
            None if client_request_id is None else clip(client_request_id),
            error_text,
            # ARM's Activity Log gives every claim as a string (``"iat": "1700000000"``), and
            # clients' models expect that (az's aaz rejects a number there).
            tuple(
                (
                    clip(str(k)),
                    clip(
                        v
                        if isinstance(v, str)
                        else json.dumps(v)
                        if isinstance(v, (list, dict))
                        else str(v)
                    ),
                )
                for k, v in claims.items()
            )
            if claims
            else (),
            clip(client_ip),
            event_id,
            request_id,
            self._tenant,
            group,
            provider,
            rtype,
        )

    def record(self, **fields: Any) -> dict[str, Any]:
        """Append one event (the keywords of :meth:`append`) and return a copy of it."""
        prepared = self._prepare(**fields)
        with self._lock:
            self._add(prepared[0], event_cost(prepared), prepared, None)
        return _build_event(prepared)

    def append(self, **fields: Any) -> None:
        """Append one event: subscription, caller, operation_name, resource_id, status,
        http_status, correlation_id, operation_id, method, uri, and optionally
        client_request_id, error, claims, client_ip, service_request_id. Its dict is built
        when first read."""
        prepared = self._prepare(**fields)
        cost = event_cost(prepared)
        with self._lock:
            self._add(prepared[0], cost, prepared, None)

    def _add(
        self,
        ts: float,
        cost: int,
        fields: tuple[Any, ...] | None,
        loaded: dict[str, Any] | None,
    ) -> None:
        """Append one event, dropping the oldest past ``max_events`` or ``max_bytes``. Holds
        the lock."""
        self._seq += 1
        stored: _Stored = (ts, self._seq, cost, fields, loaded)
        self._events.add(stored)
        self._bytes += cost
        group = _group(stored)
        series = self._groups.get(group)
        if series is None:
            series = self._groups[group] = _Series()
        series.add(stored)
        events = self._events
        while len(events) > 1 and (len(events) > self._max or self._bytes > self._max_bytes):
            dropped = events.oldest()
            events.drop(dropped)
            self._bytes -= dropped[_COST]
            old_group = _group(dropped)
            found = self._groups.get(old_group)
            if found is not None:
                found.drop(dropped)
                if not found:
                    del self._groups[old_group]

    def query(
        self, subscription: str, filter_text: str | None, select: str | None = None
    ) -> list[dict[str, Any]]:
        """Every event of ``subscription`` matching ARM's ``$filter``, newest first.

        Raises ``ArmError(400, "BadRequest")`` naming the problem for a missing or malformed
        filter or an unknown ``$select`` field.
        """
        events, _ = self.page(subscription, filter_text, select)
        return events

    def page(
        self,
        subscription: str,
        filter_text: str | None,
        select: str | None = None,
        *,
        size: int | None = None,
        after: tuple[float, int] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
        """One page of :meth:`query`: at most ``size`` events older than the position
        ``after``, and the position to continue from (None on the last page).

        The time bounds are found by binary search and only the events between them are
        read, from one group's events when the filter names a group or a resource in one.
        """
        predicate = _parse_filter(filter_text)
        fields = _parse_select(select)
        sub = subscription.lower()
        group = predicate.group()
        # The group's own events all lie in the group: its clause needs no check.
        equals = {k: v for k, v in predicate.equals.items() if k != "resourcegroupname"}
        if group is None:
            equals = predicate.equals
        with self._lock:
            series = self._events if group is None else self._groups.get(group, _Series())
            hits: list[_Stored] = []
            for stored in series.newest_first(predicate.start, predicate.end, after):
                if _subscription(stored).lower() == sub and _matches(stored, equals):
                    if size is not None and len(hits) == size:
                        break
                    hits.append(stored)
            else:
                size = None
        following = _position(hits[-1]) if size is not None and hits else None
        if fields is None:
            return [_build(s) for s in hits], following
        out = []
        for s in hits:
            event = _build(s)
            out.append({f: event[f] for f in fields if f in event})
        return out, following

    def dump(self) -> list[dict[str, Any]]:
        """Every event, oldest first, for a state dump."""
        with self._lock:
            stored = self._events.live()
        return [_build(s) for s in stored]

    def load(self, events: list[dict[str, Any]]) -> None:
        """Replace the log with a dump. Raises ValueError naming the first unusable event."""
        self.prepare_load(events)()

    def prepare_load(self, events: Any) -> Callable[[], None]:
        """Check a dump without touching the log; the returned function replaces the log with
        it. A state load checks everything first, so a bad event leaves all state as it was.
        Raises ValueError naming the first unusable event."""
        if not isinstance(events, list):
            raise ValueError("the events must be a list")
        loaded: list[tuple[float, int, dict[str, Any]]] = []
        for n, event in enumerate(events):
            if not isinstance(event, Mapping):
                raise ValueError(f"event {n} is not an object")
            stamp, sub = event.get("eventTimestamp"), event.get("subscriptionId")
            if not isinstance(stamp, str) or not isinstance(sub, str):
                raise ValueError(f"event {n} needs string 'eventTimestamp' and 'subscriptionId'")
            try:
                ts = parse_timestamp(stamp)
            except (ValueError, OverflowError):
                raise ValueError(f"event {n} has an unreadable eventTimestamp '{stamp}'") from None
            kept = copy.deepcopy(dict(event))
            # A dump is data from outside: charged by its JSON text, as large as it says.
            cost = EVENT_OVERHEAD + len(json.dumps(kept, separators=(",", ":"), default=str))
            loaded.append((ts, cost, kept))
        loaded.sort(key=lambda s: s[0])

        def commit() -> None:
            with self._lock:
                self._reset()
                for ts, cost, event in loaded[-self._max :]:
                    self._add(ts, cost, None, event)

        return commit

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._events = _Series()
        self._groups = {}
        self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


def _build_event(fields: tuple[Any, ...]) -> dict[str, Any]:
    """An event's EventData dict from the values :meth:`ActivityLog._prepare` fixed."""
    (
        ts,
        subscription,
        caller,
        operation_name,
        resource_id,
        status_value,
        http_status,
        correlation_id,
        operation_id,
        method,
        uri,
        client_request_id,
        error_text,
        claims,
        client_ip,
        event_id,
        request_id,
        tenant,
        group,
        provider,
        rtype,
    ) = fields
    claims_dict = dict(claims)
    stamp = isoformat(ts)
    properties: dict[str, str] = {
        "eventCategory": "Administrative",
        "entity": resource_id,
        "message": operation_name,
        "serviceRequestId": request_id,
    }
    sub_status = {"value": "", "localizedValue": ""}
    if http_status is not None:
        phrase, localized = _sub_status(http_status)
        properties["statusCode"] = phrase
        sub_status = {"value": phrase, "localizedValue": localized}
    if error_text is not None:
        body = error_text
        properties["statusMessage"] = body
        if status_value == "Failed":
            properties["responseBody"] = body
    event: dict[str, Any] = {
        "authorization": {"action": operation_name, "scope": resource_id},
        "caller": caller,
        "channels": "Operation",
        "claims": claims_dict,
        "correlationId": correlation_id,
        "description": "",
        "eventDataId": event_id,
        "eventName": (
            {"value": "BeginRequest", "localizedValue": "Begin request"}
            if status_value == "Started"
            else {"value": "EndRequest", "localizedValue": "End request"}
        ),
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "eventTimestamp": stamp,
        "httpRequest": {
            "clientRequestId": client_request_id,
            "clientIpAddress": client_ip,
            "method": method.upper(),
            "uri": uri,
        },
        "id": f"{resource_id}/events/{event_id}/ticks/{_ticks(ts)}",
        "level": "Error" if status_value == "Failed" else "Informational",
        "operationId": operation_id,
        "operationName": {
            "value": operation_name,
            "localizedValue": _localized_operation(operation_name),
        },
        "properties": properties,
        "resourceGroupName": group,
        "resourceProviderName": {"value": provider, "localizedValue": provider},
        "resourceType": {"value": rtype, "localizedValue": rtype},
        "resourceId": resource_id,
        "status": {"value": status_value, "localizedValue": status_value},
        "subStatus": sub_status,
        # Queryable at once: the emulator has no ingestion lag to model.
        "submissionTimestamp": stamp,
        "subscriptionId": subscription,
        "tenantId": str(claims_dict.get("tid") or tenant),
        "relatedEvents": [],
    }
    return event


# The emulator records two or three events per write, so the pure derivations are cached:
# resource IDs, operation names and statuses repeat constantly.


@functools.lru_cache(maxsize=4096)
def _resource_facts(resource_id: str) -> tuple[str, str, str]:
    """(resource group, provider namespace, resource type) of an ID; empty when unparseable."""
    try:
        rid = parse_resource_id(resource_id)
    except InvalidResourceId:
        return "", "", ""
    return rid.resource_group or "", rid.namespace or "Microsoft.Resources", rid.type


@functools.lru_cache(maxsize=256)
def _sub_status(status: int) -> tuple[str, str]:
    phrase = reason_phrase(status)
    try:
        spaced = HTTPStatus(status).phrase
    except ValueError:
        spaced = phrase
    return phrase, f"{spaced} (HTTP Status Code: {status})"


def _uuid4_text(bits: int) -> str:
    """A version-4 UUID's text from 128 random bits (what uuid.UUID does, without the object)."""
    bits = (bits & ~(0xF << 76)) | (0x4 << 76)
    bits = (bits & ~(0xC << 60)) | (0x8 << 60)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- $filter --------------------------------------------------------------------------------


def _bad_request(message: str) -> ArmError:
    return ArmError(400, "BadRequest", message)


_FILTER_HELP = (
    "The $filter must look like \"eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp "
    'le \'2026-01-02T00:00:00Z\'", optionally followed by "and" clauses on resourceGroupName, '
    "resourceUri, resourceId, resourceProvider, correlationId, caller or status with 'eq'."
)


def _field(event: Mapping[str, Any], name: str, inner: str | None = None) -> Any:
    """An event's value for a filter; None when a loaded event lacks it (a dump is data
    from outside, so a query must not assume every event has every field)."""
    value = event.get(name)
    if inner is not None:
        value = value.get(inner) if isinstance(value, Mapping) else None
    return value


# Filter field → (its display name, how to read the event's value).
_EQ_FIELDS: dict[str, tuple[str, Any]] = {
    "resourcegroupname": ("resourceGroupName", lambda e: _field(e, "resourceGroupName")),
    "resourceuri": ("resourceUri", lambda e: _field(e, "resourceId")),
    "resourceid": ("resourceId", lambda e: _field(e, "resourceId")),
    "resourceprovider": (
        "resourceProvider",
        lambda e: _field(e, "resourceProviderName", "value"),
    ),
    "correlationid": ("correlationId", lambda e: _field(e, "correlationId")),
    "caller": ("caller", lambda e: _field(e, "caller")),
    "status": ("status", lambda e: _field(e, "status", "value")),
}


_BARE_TIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?(?![\w.:-])"
)


@dataclass(frozen=True)
class _FilterToken:
    kind: str  # word | string | end
    text: str
    pos: int


def _tokenize_filter(text: str) -> list[_FilterToken]:
    tokens: list[_FilterToken] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            quoted = scan_quoted(text, i)
            if quoted is None:
                raise _bad_request(
                    f"The $filter has an unterminated quoted value starting at position "
                    f"{i}. {_FILTER_HELP}"
                )
            tokens.append(_FilterToken("string", quoted[0], i))
            i = quoted[1]
        elif bare := _BARE_TIME_RE.match(text, i):
            # az monitor activity-log list and scripts formatting a datetime write the time
            # unquoted, often without a zone (or with a space for the 'T').
            tokens.append(_FilterToken("string", bare.group(0), i))
            i = bare.end()
        elif ch.isalnum() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] in "_.-/@:"):
                i += 1
            tokens.append(_FilterToken("word", text[start:i], start))
        else:
            raise _bad_request(
                f"The $filter has an unexpected character '{ch}' at position {i}. {_FILTER_HELP}"
            )
    tokens.append(_FilterToken("end", "", n))
    return tokens


@dataclass
class _Filter:
    start: float
    end: float | None
    equals: dict[str, str]  # lowered filter field → lowered value

    def group(self) -> str | None:
        """The one resource group every match lies in, when the filter names it (directly, or
        by a resource ID in it); None when matches may lie anywhere."""
        named = self.equals.get("resourcegroupname")
        if named is not None:
            return named
        for key in ("resourceuri", "resourceid"):
            uri = self.equals.get(key)
            if uri is not None:
                return _resource_facts(uri)[0].lower()
        return None


def _matches(stored: _Stored, equals: Mapping[str, str]) -> bool:
    """Whether an event passes the equality clauses (lower-cased field → lower-cased value)."""
    for key, wanted in equals.items():
        actual = _value(stored, key)
        if not isinstance(actual, str) or actual.lower() != wanted:
            return False
    return True


def _parse_filter(text: str | None) -> _Filter:
    """``filter := clause ('and' clause)*``; ``clause := field op 'value'``."""
    if text is None or not text.strip():
        raise _bad_request(
            f"The $filter query parameter is required and must include a start time "
            f"(eventTimestamp ge '...'). {_FILTER_HELP}"
        )
    tokens = _tokenize_filter(text)
    i = 0
    start: float | None = None
    end: float | None = None
    equals: dict[str, str] = {}
    last = len(tokens) - 1
    while True:
        # The final token is always "end", so clamping reads past a short clause as "end".
        field_tok, op_tok, value_tok = (tokens[min(i + k, last)] for k in range(3))
        if field_tok.kind != "word":
            found = "the end" if field_tok.kind == "end" else f"'{field_tok.text}'"
            raise _bad_request(
                f"The $filter expected a field name at position {field_tok.pos} but found "
                f"{found}. {_FILTER_HELP}"
            )
        field_name = field_tok.text
        op = op_tok.text.lower() if op_tok.kind == "word" else ""
        if op not in ("eq", "ge", "le"):
            raise _bad_request(
                f"The $filter clause on '{field_name}' needs an operator 'eq', 'ge' or 'le' at "
                f"position {op_tok.pos}. {_FILTER_HELP}"
            )
        if value_tok.kind == "word" and value_tok.text.lower() != "and":
            # The CLI's older filters leave values unquoted (resourceProvider eq Microsoft.X).
            value_tok = _FilterToken("string", value_tok.text, value_tok.pos)
        if value_tok.kind != "string":
            raise _bad_request(
                f"The $filter clause on '{field_name}' needs a quoted value at position "
                f"{value_tok.pos}. {_FILTER_HELP}"
            )
        key = field_name.lower()
        if key == "eventtimestamp":
            if op == "eq":
                raise _bad_request(
                    f"The $filter compares eventTimestamp with 'ge' and 'le' only. {_FILTER_HELP}"
                )
            try:
                moment = parse_timestamp(value_tok.text)
            except ValueError:
                raise _bad_request(
                    f"The $filter value '{value_tok.text}' for eventTimestamp is not an ISO 8601 "
                    f"time."
                ) from None
            if (op == "ge" and start is not None) or (op == "le" and end is not None):
                raise _bad_request(f"The $filter has more than one 'eventTimestamp {op}' clause.")
            if op == "ge":
                start = moment
            else:
                end = moment
        elif key in _EQ_FIELDS:
            display = _EQ_FIELDS[key][0]
            if op != "eq":
                raise _bad_request(
                    f"The $filter compares {display} with 'eq' only, not '{op}'. {_FILTER_HELP}"
                )
            if key in equals:
                raise _bad_request(f"The $filter has more than one '{display}' clause.")
            equals[key] = value_tok.text.lower()
        else:
            raise _bad_request(f"The $filter field '{field_name}' is not supported. {_FILTER_HELP}")
        i += 3
        if tokens[i].kind == "end":
            break
        if tokens[i].kind != "word" or tokens[i].text.lower() != "and":
            raise _bad_request(
                f"The $filter expected 'and' or the end at position {tokens[i].pos} but found "
                f"'{tokens[i].text}'. {_FILTER_HELP}"
            )
        i += 1
    if start is None:
        raise _bad_request(
            f"The $filter must include a start time: eventTimestamp ge '...'. {_FILTER_HELP}"
        )
    if end is not None and end < start:
        raise _bad_request("The $filter end time is earlier than its start time.")
    return _Filter(start, end, equals)


def _parse_select(select: str | None) -> list[str] | None:
    if select is None or not select.strip():
        return None
    fields: list[str] = []
    for part in select.split(","):
        name = part.strip()
        if not name:
            continue
        known = _FIELD_BY_LOWER.get(name.lower())
        if known is None:
            raise _bad_request(
                f"The $select field '{name}' is not an event field; use any of "
                f"{', '.join(EVENT_FIELDS)}."
            )
        if known not in fields:
            fields.append(known)
    return fields or None
