"""Reading timeline inputs: Activity Log exports and armguard job-event logs, streamed.

Accepted shapes, detected per file and per top-level JSON value:

* the JSON array ``az monitor activity-log list`` prints;
* the REST API's pages ``{"value": [...], "nextLink": ...}`` (the emulator's too), one or many;
* JSON lines of Activity Log events, or of diagnostic-settings export records
  (``time``/``resultType``);
* JSON lines of :class:`~armguard.events.JobEvent`.

Exports run to hundreds of megabytes, so nothing here loads a file whole: a small incremental
reader decodes one element at a time with :meth:`json.JSONDecoder.raw_decode` over a window of
the file, and memory stays bounded by the largest single event.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, TextIO

from armguard.events import JobEvent

__all__ = [
    "MAX_ELEMENT_CHARS",
    "ActivityEvent",
    "JobRecord",
    "Record",
    "SkippedEvent",
    "SourceError",
    "check_time_range",
    "normalise_record",
    "parse_time",
    "read_records",
]

MAX_ELEMENT_CHARS = 32 * 1024 * 1024
"""Largest single event accepted; beyond it the input is treated as broken, not buffered."""

_CHUNK = 1 << 16
_TOKEN_TAIL = 8
"""A cut literal or escape (``tr``, ``\\u00``) makes the decoder fail at most this far from the end."""
_WS = " \t\r\n"

_ISO_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_FIRST_TS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST_TS = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()
"""Times are kept within what ``datetime`` can print back (a 7th fractional digit on the last
second of 9999 would round into year 10000)."""
_STATUS_IN_TEXT_RE = re.compile(r"HTTP Status Code:\s*(\d{3})", re.IGNORECASE)
_PHRASES = {s.phrase.replace(" ", "").lower(): s.value for s in HTTPStatus}


class SourceError(Exception):
    """An input that cannot be read as events; the message names the file and the problem."""


class SkippedEvent(SourceError):
    """An event of a known shape that the timeline cannot place: it names no resource.

    ``reason`` is short and the same for every such event, so skips can be counted by it.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """One Activity Log event, reduced to what the timeline needs."""

    source: str
    ts: float
    resource_id: str
    operation: str
    """``Microsoft.Network/virtualNetworks/subnets/write``."""
    caller: str
    correlation_id: str
    operation_id: str
    event_name: str
    """``BeginRequest`` or ``EndRequest`` (may be empty in exports that drop it)."""
    status: str
    """``Started``, ``Accepted``, ``Succeeded``, ``Failed``…"""
    http_status: int | None
    status_message: str | None
    """The error body (``properties.statusMessage`` or ``responseBody``) of a failure."""
    request_body: str | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One armguard job event with its time parsed."""

    source: str
    ts: float
    event: JobEvent


Record = ActivityEvent | JobRecord


def parse_time(text: str) -> float:
    """ISO 8601 → epoch seconds. ARM writes 7 fractional digits, which ``datetime`` refuses.

    A time without a zone is UTC, as ARM's are.
    """
    m = _ISO_RE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not an ISO 8601 time")
    clock = m.group("time")
    if clock.count(":") == 1:
        clock += ":00"
    tz = m.group("tz") or "Z"
    tz = "+00:00" if tz.upper() == "Z" else tz
    if ":" not in tz:
        tz = tz[:3] + ":" + tz[3:]
    try:
        dt = datetime.fromisoformat(f"{m.group('date')}T{clock}{tz}").astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a valid time: {exc}") from None
    except OverflowError:
        raise ValueError(f"'{text}' is outside the years 1 to 9999") from None
    frac = m.group("frac") or ""
    ts = dt.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
    return min(max(ts, _FIRST_TS), _LAST_TS)


def check_time_range(ts: float, what: str) -> float:
    """``ts`` if ``datetime`` can represent it, else ValueError naming ``what``."""
    if not _FIRST_TS <= ts <= _LAST_TS:
        raise ValueError(f"{what} is outside the years 1 to 9999")
    return ts


# --- the incremental JSON reader -----------------------------------------------------------


class _Reader:
    """A forward-only window over a text stream that decodes one JSON value at a time."""

    def __init__(self, stream: TextIO, name: str, on_progress: Callable[[int], None] | None):
        self._stream = stream
        self._name = name
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._consumed = 0  # characters dropped from the front of the window
        self._lines = 1  # line number at the start of the window
        self._line_start = 0  # absolute offset where that line begins
        self._decoder = json.JSONDecoder()
        self._on_progress = on_progress

    def _fill(self) -> bool:
        if self._eof:
            return False
        # Read at least as much as is buffered, so one huge element costs linear time.
        chunk = self._stream.read(max(_CHUNK, len(self._buf) - self._pos))
        if self._on_progress is not None:
            self._on_progress(len(chunk))
        if not chunk:
            self._eof = True
            return False
        if self._pos:
            dropped = self._buf[: self._pos]
            newlines = dropped.count("\n")
            if newlines:
                self._lines += newlines
                self._line_start = self._consumed + dropped.rfind("\n") + 1
            self._consumed += self._pos
            self._buf = self._buf[self._pos :]
            self._pos = 0
        self._buf += chunk
        return True

    def where(self, pos: int | None = None) -> str:
        at = self._pos if pos is None else pos
        newline = self._buf.rfind("\n", 0, at)
        line_start = self._consumed + newline + 1 if newline >= 0 else self._line_start
        line = self._lines + self._buf.count("\n", 0, at)
        return f"line {line} column {self._consumed + at - line_start + 1}"

    def fail(self, problem: str, pos: int | None = None) -> SourceError:
        return SourceError(f"{self._name}: {problem} at {self.where(pos)}")

    def peek(self) -> str:
        """The next non-blank character, or '' at the end of the input."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WS:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            found = self.peek()
            what = f"'{found}'" if found else "the end of the file"
            raise self.fail(f"invalid JSON: expected '{char}' but found {what}")
        self._pos += 1

    def value(self) -> Any:
        """Decode the next whole JSON value, reading more of the file until it is complete."""
        self.peek()
        while True:
            try:
                obj, end = self._decoder.raw_decode(self._buf, self._pos)
            except RecursionError:
                raise self.fail(
                    "a JSON value is nested too deeply to read (Activity Log events are a few "
                    "levels deep)"
                ) from None
            except json.JSONDecodeError as exc:
                # More input can only complete a value cut at the window's end (or a long
                # string); an error well before the end is a real syntax error.
                cut = "Unterminated" in exc.msg or exc.pos >= len(self._buf) - _TOKEN_TAIL
                if cut and len(self._buf) - self._pos <= MAX_ELEMENT_CHARS and self._fill():
                    continue
                if self._eof and ("Unterminated" in exc.msg or exc.pos >= len(self._buf.rstrip())):
                    raise self.fail(f"the JSON is truncated ({exc.msg})", exc.pos) from None
                if cut and not self._eof:
                    raise self.fail(
                        f"an element is larger than {MAX_ELEMENT_CHARS // 2**20} MB "
                        f"or broken ({exc.msg})",
                        exc.pos,
                    ) from None
                raise self.fail(f"invalid JSON ({exc.msg})", exc.pos) from None
            # A number or literal that ends the window may continue in the next chunk.
            if end >= len(self._buf) and self._fill():
                continue
            self._pos = end
            return obj

    def string(self) -> str:
        start = self._pos
        value = self.value()
        if not isinstance(value, str):
            raise self.fail("invalid JSON: expected an object key", start)
        return value


def _stream_values(reader: _Reader) -> Iterator[tuple[Any, str]]:
    """Every event-sized value in the input, with a label of where it was found.

    Top-level arrays and the ``value`` arrays of pages are streamed element by element; any
    other top-level value (one JSON line) is yielded whole.
    """
    index = 0
    while (first := reader.peek()) != "":
        index += 1
        if first == "[":
            yield from _stream_array(reader, f"array {index}")
        elif first == "{":
            yield from _stream_object(reader, index)
        else:
            raise reader.fail(
                "not an Activity Log export or job-event log (expected a JSON array, "
                'a {"value": [...]} page or JSON lines of objects)'
            )
        if reader.peek() == ",":
            raise reader.fail("invalid JSON: a ',' between top-level values")


def _stream_array(reader: _Reader, label: str) -> Iterator[tuple[Any, str]]:
    reader.take("[")
    if reader.peek() == "]":
        reader.take("]")
        return
    n = 0
    while True:
        n += 1
        yield reader.value(), f"{label} element {n}"
        nxt = reader.peek()
        if nxt == ",":
            reader.take(",")
            continue
        if nxt == "]":
            reader.take("]")
            return
        if nxt == "":
            raise reader.fail("the JSON is truncated (the array is not closed)")
        raise reader.fail(f"invalid JSON: expected ',' or ']' but found '{nxt}'")


def _stream_object(reader: _Reader, index: int) -> Iterator[tuple[Any, str]]:
    """A top-level object: a page (stream its ``value``) or one event (decode it whole)."""
    reader.take("{")
    fields: dict[str, Any] = {}
    if reader.peek() == "}":
        reader.take("}")
        yield fields, f"value {index}"
        return
    while True:
        if reader.peek() != '"':
            raise reader.fail("invalid JSON: expected an object key")
        key = reader.string()
        reader.take(":")
        if key == "value" and reader.peek() == "[" and not fields:
            # A page: its events arrive one by one; the remaining keys (nextLink) are small.
            yield from _stream_array(reader, f"page {index} value")
            fields[key] = _PAGE_MARK
        else:
            fields[key] = reader.value()
        nxt = reader.peek()
        if nxt == ",":
            reader.take(",")
            continue
        if nxt == "}":
            reader.take("}")
            break
        if nxt == "":
            raise reader.fail("the JSON is truncated (an object is not closed)")
        raise reader.fail(f"invalid JSON: expected ',' or '}}' but found '{nxt}'")
    if fields.get("value") is _PAGE_MARK:
        return
    if isinstance(fields.get("value"), list):
        # A page whose "value" came after other keys was decoded whole; its events still count.
        for n, item in enumerate(fields["value"], 1):
            yield item, f"page {index} value element {n}"
        return
    yield fields, f"record {index}"


_PAGE_MARK: Any = object()


# --- shape detection and normalisation ---------------------------------------------------------


def _localized(value: Any) -> str:
    """``{"value": "Failed", "localizedValue": "Failed"}`` or a plain string → ``Failed``."""
    if isinstance(value, Mapping):
        inner = value.get("value")
        if inner is None:
            inner = value.get("localizedValue")
        return "" if inner is None else str(inner)
    return "" if value is None else str(value)


def _http_status(*candidates: Any) -> int | None:
    """The HTTP status from ``subStatus`` / ``statusCode``: ``409``, ``Conflict``, or
    ``Conflict (HTTP Status Code: 409)``."""
    for raw in candidates:
        text = _localized(raw).strip()
        if not text:
            continue
        if text.isdigit() and len(text) == 3:
            return int(text)
        m = _STATUS_IN_TEXT_RE.search(text)
        if m:
            return int(m.group(1))
        code = _PHRASES.get(text.replace(" ", "").lower())
        if code is not None:
            return code
    return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


_CALLER_KEYS = ("name", "upn", "unique_name", "email", "appid", "appId", "oid", "objectId", "id")
_CLAIM_KEYS = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "name",
    "upn",
    "unique_name",
    "appid",
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
)


def _caller(value: Any, identity: Any = None) -> str:
    """Who made the request: ``caller`` as ARM writes it (a UPN or an app ID), or, from
    exports that write an object there, its name, UPN or app ID, or the identity's claims."""
    if isinstance(value, str) and value:
        return value
    for source in (value, identity):
        if not isinstance(source, Mapping):
            continue
        for key in _CALLER_KEYS:
            found = source.get(key)
            if isinstance(found, str) and found:
                return found
        claims = source.get("claims")
        if isinstance(claims, Mapping):
            for key in _CLAIM_KEYS:
                found = claims.get(key)
                if isinstance(found, str) and found:
                    return found
    if value is None or value == "" or isinstance(value, Mapping | list):
        return ""
    return str(value)


def _resource(data: Mapping[str, Any], source: str, where: str) -> str:
    value = data.get("resourceId")
    if isinstance(value, str) and value.strip():
        return value
    what = "null" if value is None else "empty" if value == "" else f"a JSON {type(value).__name__}"
    raise SkippedEvent(
        f"{source}: {where} has no resourceId ({what}); it cannot be placed on a timeline",
        "no resourceId",
    )


_JOB_TEXT = ("ts", "job_id", "resource_id", "writer", "event")
_JOB_OPTIONAL_TEXT = ("verb", "kind", "code", "message", "etag_sent", "etag_live", "operation_url")


def _check_job_event(data: Mapping[str, Any]) -> None:
    """JobEvent takes what it is given; a log is untrusted, so check the types first."""

    def wrong(key: str, want: str) -> ValueError:
        got = type(data[key]).__name__.replace("NoneType", "null").replace("dict", "object")
        got = {"str": "string", "int": "number", "float": "number", "list": "array"}.get(got, got)
        return ValueError(f"'{key}' is a JSON {got}, not {want}")

    missing = [key for key in _JOB_TEXT if key not in data]
    if missing:
        raise ValueError(f"job event lacks {', '.join(sorted(missing))}")
    for key in _JOB_TEXT:
        if not isinstance(data.get(key), str):
            raise wrong(key, "a string")
    for key in _JOB_OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise wrong(key, "a string")
    for key in ("attempt", "fence", "status"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise wrong(key, "an integer")
    status = data.get("status")
    if status is not None and not 100 <= status <= 599:
        raise ValueError(f"'status' {status} is not an HTTP status")
    delay = data.get("delay")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)):
        raise wrong("delay", "a number")
    if data.get("detail") is not None and not isinstance(data["detail"], Mapping):
        raise wrong("detail", "an object")


def _is_job_event(data: Mapping[str, Any]) -> bool:
    return "job_id" in data and "event" in data and "resource_id" in data


def _is_event_data(data: Mapping[str, Any]) -> bool:
    return "eventTimestamp" in data and ("operationName" in data or "resourceId" in data)


def _is_export_record(data: Mapping[str, Any]) -> bool:
    return "time" in data and "operationName" in data and "resourceId" in data


def _from_event_data(data: Mapping[str, Any], source: str, where: str) -> ActivityEvent:
    props = data.get("properties")
    props = props if isinstance(props, Mapping) else {}
    http = data.get("httpRequest")
    http = http if isinstance(http, Mapping) else {}
    status = _localized(data.get("status"))
    message = _text(props.get("statusMessage")) or _text(props.get("responseBody"))
    return ActivityEvent(
        source=source,
        ts=parse_time(str(data.get("eventTimestamp"))),
        # A log names few resources, operations and callers many times over: one string each.
        resource_id=sys.intern(_resource(data, source, where)),
        operation=sys.intern(_localized(data.get("operationName"))),
        caller=sys.intern(_caller(data.get("caller"), {"claims": data.get("claims")})),
        correlation_id=str(data.get("correlationId") or ""),
        operation_id=str(data.get("operationId") or ""),
        event_name=_localized(data.get("eventName")),
        status=status,
        http_status=_http_status(data.get("subStatus"), props.get("statusCode")),
        status_message=message,
        request_body=_text(props.get("requestbody") or props.get("requestBody")),
    )


_RESULT_TYPES = {"start": "Started", "success": "Succeeded", "failure": "Failed"}


def _from_export_record(data: Mapping[str, Any], source: str, where: str) -> ActivityEvent:
    """A diagnostic-settings export record (storage / Event Hubs shape)."""
    props = data.get("properties")
    props = props if isinstance(props, Mapping) else {}
    caller = _caller(data.get("caller"), data.get("identity"))
    result = str(data.get("resultType") or "")
    status = _RESULT_TYPES.get(result.lower(), result)
    return ActivityEvent(
        source=source,
        ts=parse_time(str(data.get("time"))),
        resource_id=sys.intern(_resource(data, source, where)),
        operation=sys.intern(_localized(data.get("operationName"))),
        caller=sys.intern(caller),
        correlation_id=str(data.get("correlationId") or ""),
        operation_id=str(data.get("operationId") or ""),
        event_name="BeginRequest" if status == "Started" else "EndRequest",
        status=status,
        http_status=_http_status(props.get("statusCode"), data.get("resultSignature")),
        status_message=_text(props.get("statusMessage")) or _text(props.get("responseBody")),
        request_body=_text(props.get("requestbody")),
    )


def normalise_record(value: Any, where: str, name: str) -> Record:
    """One decoded JSON value as an event, or :class:`SourceError` saying why it is not one."""
    if not isinstance(value, Mapping):
        kind = type(value).__name__.replace("NoneType", "null")
        raise SourceError(f"{name}: {where} is a JSON {kind}, not an event object")
    try:
        if _is_job_event(value):
            _check_job_event(value)
            event = JobEvent.from_json(value)
            return JobRecord(source=name, ts=parse_time(event.ts), event=event)
        if _is_event_data(value):
            return _from_event_data(value, name, where)
        if _is_export_record(value):
            return _from_export_record(value, name, where)
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{name}: {where} is not a valid event: {exc}") from None
    keys = ", ".join(sorted(str(k) for k in value)[:8]) or "none"
    raise SourceError(
        f"{name}: {where} is neither an Activity Log event nor an armguard job event "
        f"(its keys: {keys})"
    )


def read_records(
    path: str | os.PathLike[str],
    on_progress: Callable[[int], None] | None = None,
    on_skip: Callable[[SkippedEvent], None] | None = None,
) -> Iterator[Record]:
    """Stream every event in one file. Raises :class:`SourceError` naming the file.

    ``on_progress`` receives the number of characters read, chunk by chunk; ``on_skip`` each
    event left out (one naming no resource), which is otherwise skipped silently.
    """
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise SourceError(f"{name}: no such file")
    if p.is_dir():
        raise SourceError(f"{name}: is a directory, not a log file")
    try:
        handle = p.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    count = skipped = 0
    with handle:
        reader = _Reader(handle, name, on_progress)
        try:
            if reader.peek() == "":
                raise SourceError(f"{name}: the file is empty")
            for value, where in _stream_values(reader):
                try:
                    record = normalise_record(value, where, name)
                except SkippedEvent as skip:
                    skipped += 1
                    if on_skip is not None:
                        on_skip(skip)
                    continue
                except RecursionError:
                    raise SourceError(f"{name}: {where} is nested too deeply to read") from None
                count += 1
                yield record
        except UnicodeDecodeError as exc:
            raise SourceError(f"{name}: is not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise SourceError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if count == 0 and skipped:
        raise SourceError(
            f"{name}: none of its {skipped} events names a resource (resourceId is missing or "
            "null), so there is nothing to lay on a timeline"
        )
    if count == 0:
        raise SourceError(f"{name}: contains no events")
