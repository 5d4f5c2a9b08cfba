"""The timeline as one self-contained HTML file.

Everything is drawn server-side as inline SVG, so the page needs no JavaScript and fetches
nothing (a Content-Security-Policy forbids scripts and remote loads outright). Every string
taken from a log (callers, resource IDs, error messages) is HTML-escaped: logs are untrusted
input and a caller name can be ``<script>``.

One chart per top-level resource (a VNet with its subnets, a VM): one lane per caller,
operations as bars coloured by outcome, overlap windows shaded, retry storms banded, each
conflict marked and joined to the write that caused it by an arrow whose tooltip says why.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources as package_files
from string import Template

from armguard import __version__
from armguard.arm.ids import InvalidResourceId, parse_resource_id
from armguard.clock import isoformat
from armguard.diagnose.timeline import (
    Conflict,
    Mark,
    Operation,
    Overlap,
    RetryStorm,
    StaleReplay,
    Timeline,
    fit_resource_ids,
    short_resource_id,
)

__all__ = ["ABSORBED_COLOUR", "MARK_COLOURS", "OUTCOME_COLOURS", "render_report"]

OUTCOME_COLOURS: dict[str, str] = {
    "succeeded": "#2e7d32",
    "conflict": "#d32f2f",
    "failed": "#ef6c00",
    "running": "#1565c0",
    "canceled": "#757575",
}
_OUTCOME_LABELS = {
    "succeeded": "Succeeded",
    "conflict": "Conflict (409/412/429 caused by another write, a state or a lock)",
    "failed": "Failed for another reason",
    "running": "Still running when the log ends",
    "canceled": "Canceled",
}
ABSORBED_COLOUR = "#f4a3a3"
"""A conflict on armguard's own write that the job absorbed: no problem, but part of the story."""
MARK_COLOURS: dict[str, str] = {
    "rebased": "#00838f",
    "dropped_stale": "#5d4037",
    "prerequisite": "#37474f",
    "coalesced": "#283593",
    "already_satisfied": "#558b2f",
    "requeued": "#ad1457",
}
_MARK_LABELS = {
    "rebased": "Rebased on the live state",
    "dropped_stale": "Dropped: its baseline had moved",
    "prerequisite": "Prerequisite transition (deallocate, start…)",
    "coalesced": "One write carried several intents",
    "already_satisfied": "Already satisfied: no write needed",
    "requeued": "Requeued: the retry budget ran out in a storm; the job waits its turn again",
}
_LINK_COLOUR = "#6a1b9a"
_OVERLAP_FILL = "#ffe082"
_STORM_FILL = "#ffccbc"

_WIDTH = 1000
"""viewBox width: the SVG scales to the page (900 px and up) instead of scrolling sideways."""
_LABEL = 180
_RIGHT = 16
_TOP = 30
_LANE = 40
_BAR = 16
_BAR_AT = 20
"""Bar offset in its lane; the space above holds the marks."""
_MIN_BAR = 4
_LANE_CHARS = 24
_MAX_LINKS = 60
"""Operation links listed in one table cell; an overlap of thousands says how many more."""
_ID_CHARS = 36
"""Resource names in tables: the end of the short ID, whole ID on hover."""
_FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_YEARS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_STEPS = (
    *(m * 10.0**e for e in range(-3, 1) for m in (1, 2, 5)),
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    10800.0,
    21600.0,
    43200.0,
    86400.0,
    *(86400.0 * d for d in (2, 7, 14, 30, 61, 122)),
)
"""Tick intervals a reader counts in: 1, 2, 5 ms … 1 s, 15 s, 1 min, 1 h, 1 day…"""
_MAX_TICKS = 7


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _clamp(ts: float) -> float:
    return min(max(ts, _FIRST), _LAST)


def _clock(ts: float) -> str:
    dt = datetime.fromtimestamp(_clamp(ts), tz=UTC)
    return f"{dt:%H:%M:%S}.{dt.microsecond // 1000:03d}"


def _links(ids: Sequence[str]) -> str:
    shown = ", ".join(f'<a href="#{_e(i)}">{_e(i)}</a>' for i in ids[:_MAX_LINKS])
    more = len(ids) - _MAX_LINKS
    return shown + (f" … and {more} more" if more > 0 else "")


def _short(resource_id: str, root: str) -> str:
    if resource_id.lower() == root.lower():
        return resource_id.rsplit("/", 1)[-1]
    return resource_id[len(root) :].lstrip("/") or resource_id


class _Scale:
    """One time axis for every chart, so a bar's place means the same moment on each."""

    def __init__(self, start: float, end: float) -> None:
        span = max(end - start, 0.001)
        pad = span * 0.02
        # Padding must not leave the calendar: a log can hold events dated 0001 or 9999.
        self.start = _clamp(start - pad)
        self.span = max(_clamp(end + pad) - self.start, 0.001)
        self.width = _WIDTH - _LABEL - _RIGHT

    def x(self, ts: float) -> float:
        return round(_LABEL + (ts - self.start) / self.span * self.width, 1)

    def ticks(self) -> list[tuple[float, str]]:
        """Round times inside the axis, at most ``_MAX_TICKS``, labelled to the step's grain."""
        end = self.start + self.span
        if self.span > 366 * 86400:
            return self._year_ticks(end)
        step = next(s for s in _STEPS if self.span / s <= _MAX_TICKS)
        first = math.ceil(self.start / step) * step
        out = []
        n = 0
        while (ts := first + n * step) <= end:
            out.append((ts, _tick_label(ts, step, self.span)))
            n += 1
        return out

    def _year_ticks(self, end: float) -> list[tuple[float, str]]:
        # Years differ in length: ticks on the 1st of January read as round numbers.
        first = datetime.fromtimestamp(self.start, tz=UTC).year
        last = datetime.fromtimestamp(_clamp(end), tz=UTC).year
        years = (last - first) or 1
        step = next((s for s in _YEARS if years / s <= _MAX_TICKS), _YEARS[-1])
        out = []
        for year in range(max(1, -(-first // step) * step), last + 1, step):
            ts = datetime(year, 1, 1, tzinfo=UTC).timestamp()
            if self.start <= ts <= end:
                out.append((ts, f"{year:04d}-01-01"))
        return out


def _tick_label(ts: float, step: float, span: float) -> str:
    dt = datetime.fromtimestamp(_clamp(ts), tz=UTC)
    if step >= 86400:
        return f"{dt.year:04d}-{dt:%m-%d}"
    day = f"{dt:%m-%d} " if span > 86400 else ""
    if step >= 60:
        return f"{day}{dt:%H:%M}"
    if step >= 1:
        return f"{day}{dt:%H:%M:%S}"
    return f"{dt:%H:%M:%S}.{dt.microsecond // 1000:03d}"


def _axis(scale: _Scale, height: float) -> str:
    parts = []
    for ts, label in scale.ticks():
        x = scale.x(ts)
        # Keep every label whole inside the chart: 11 px digits are about 6.2 units wide.
        half = len(label) * 3.2
        anchor, tx = "middle", x
        if x + half > _WIDTH - 2:
            anchor, tx = "end", _WIDTH - 2
        parts.append(
            f'<line class="grid" x1="{x}" y1="{_TOP - 6}" x2="{x}" y2="{height - 4}"/>'
            f'<text class="tick" x="{tx}" y="{_TOP - 10}" text-anchor="{anchor}" '
            f'data-ts="{isoformat(ts)}">{_e(label)}</text>'
        )
    return "".join(parts)


def _op_title(op: Operation) -> str:
    lines = [
        f"{op.id}: {op.caller}" + (" (armguard job)" if op.own else ""),
        f"{op.operation} on {op.resource_id}",
        f"{_clock(op.start)} → {_clock(op.end) if op.end is not None else 'still running'}",
        f"outcome: {op.outcome}"
        + (f" ({op.http_status} {op.code or ''})" if op.http_status else ""),
    ]
    if op.kind:
        lines.append(f"kind: {op.kind}")
    if op.etag_sent:
        lines.append(f"ETag sent: {op.etag_sent}")
    if op.coalesced:
        lines.append("also carried: " + ", ".join(w for _, w in op.coalesced))
    return "\n".join(lines)


def _fill(op: Operation, conflict: Conflict | None) -> str:
    if conflict is not None and conflict.handled == "absorbed":
        return ABSORBED_COLOUR
    return OUTCOME_COLOURS.get(op.outcome, OUTCOME_COLOURS["failed"])


def _chart(
    index: int,
    root: str,
    ops: list[Operation],
    *,
    scale: _Scale,
    overlaps: Sequence[Overlap],
    storms: Sequence[RetryStorm],
    replays: Sequence[StaleReplay],
    marks: Sequence[Mark],
    conflicts: dict[str, Conflict],
    log_end: float,
) -> str:
    lane: dict[str, int] = {}
    own: set[str] = set()
    for op in ops:
        lane.setdefault(op.caller, len(lane))
        if op.own:
            own.add(op.caller)
    for mark in marks:
        lane.setdefault(mark.writer, len(lane))
        own.add(mark.writer)
    height = _TOP + _LANE * len(lane) + 6
    ids = {op.id for op in ops}

    def y(caller: str) -> float:
        return _TOP + lane[caller] * _LANE + _BAR_AT

    parts: list[str] = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_WIDTH} {height}" role="img" preserveAspectRatio="xMinYMin meet" '
        f'aria-label="Timeline of {_e(root)}" data-resource="{_e(root)}">',
        f'<defs><marker id="arrow-{index}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{_LINK_COLOUR}"/></marker></defs>',
        _axis(scale, height),
    ]
    # Overlap windows behind everything, then storms behind their lane.
    for overlap in overlaps:
        lanes = [lane[c] for c in overlap.callers if c in lane]
        if not lanes:
            continue
        top = _TOP + min(lanes) * _LANE + 2
        bottom = _TOP + (max(lanes) + 1) * _LANE - 2
        who = _who(overlap.callers)
        for start, end in overlap.windows or ((overlap.start, overlap.end),):
            x1, x2 = scale.x(start), scale.x(end)
            parts.append(
                f'<rect class="overlap" x="{x1}" y="{top}" width="{max(x2 - x1, 2.0)}" '
                f'height="{bottom - top}" fill="{_OVERLAP_FILL}" fill-opacity="0.55">'
                f"<title>{_e(f'Overlapping writers: {who}, ')}"
                f"{_e(f'{_clock(start)} to {_clock(end)} ({overlap.relation})')}"
                f"</title></rect>"
            )
    for storm in storms:
        if storm.caller not in lane:
            continue
        x1, x2 = scale.x(storm.start), scale.x(storm.end)
        top = _TOP + lane[storm.caller] * _LANE + 1
        parts.append(
            f'<rect class="storm" x="{x1 - 3}" y="{top}" width="{max(x2 - x1, 2.0) + 6}" '
            f'height="{_LANE - 2}" fill="{_STORM_FILL}" rx="4">'
            f"<title>{_e(f'Retry storm: {storm.caller} retried {storm.retries} times ')}"
            f"{_e(f'({storm.rate_per_minute}/min) from {_clock(storm.start)} to {_clock(storm.end)}')}"
            f"</title></rect>"
        )
    # Lanes.
    for caller in lane:
        ly = y(caller) + _BAR / 2 + 4
        label = caller if len(caller) <= _LANE_CHARS else caller[: _LANE_CHARS - 1] + "…"
        cls = "lane own" if caller in own else "lane"
        parts.append(
            f'<text class="{cls}" x="6" y="{ly}" data-lane="{_e(caller)}">'
            f"<title>{_e(caller)}{' (armguard job writer)' if caller in own else ''}</title>"
            f"{_e(label)}</text>"
        )
    # Bars.
    for op in ops:
        x1 = scale.x(op.start)
        x2 = scale.x(op.end if op.end is not None else log_end)
        conflict = conflicts.get(op.id)
        handled = f' data-handled="{conflict.handled}"' if conflict and conflict.handled else ""
        parts.append(
            f'<g class="op op-{op.outcome}{" own" if op.own else ""}" id="{_e(op.id)}" '
            f'data-op="{_e(op.id)}" data-caller="{_e(op.caller)}" data-outcome="{op.outcome}" '
            f'data-own="{"true" if op.own else "false"}"{handled}>'
            f'<rect x="{x1}" y="{y(op.caller)}" width="{max(x2 - x1, _MIN_BAR)}" '
            f'height="{_BAR}" fill="{_fill(op, conflict)}" shape-rendering="crispEdges"/>'
            f"<title>{_e(_op_title(op))}</title></g>"
        )
    parts.extend(_marks(marks, scale, {c: _TOP + n * _LANE for c, n in lane.items()}))
    # Conflict markers and their links to the causing write.
    for op in ops:
        conflict = conflicts.get(op.id)
        if conflict is None:
            continue
        at = op.end if op.end is not None else op.start
        cx, cy = scale.x(at) + 2, y(op.caller) + _BAR / 2
        cause = conflict.cause
        if cause is not None and cause.id in ids:
            cause_end = cause.end if cause.end is not None else log_end
            fx = scale.x(min(max(op.start, cause.start), cause_end))
            fy = y(cause.caller) + _BAR / 2
            lift = min(fy, cy) - (18 if fy == cy else 8)
            parts.append(
                f'<path class="link conflict-link" data-conflict="{_e(op.id)}" '
                f'data-cause="{_e(cause.id)}" d="M{fx},{fy} Q{(fx + cx) / 2},{lift} {cx},{cy}" '
                f'marker-end="url(#arrow-{index})"><title>{_e(conflict.explanation)}</title></path>'
            )
        parts.append(
            f'<circle class="marker-conflict{" absorbed" if conflict.handled == "absorbed" else ""}" '
            f'data-conflict="{_e(op.id)}" data-relation="{_e(conflict.relation or "")}" '
            f'cx="{cx}" cy="{cy}" r="4"><title>{_e(conflict.explanation)}</title></circle>'
        )
    for replay in replays:
        op = replay.operation
        if op.id not in ids:
            continue
        parts.append(
            f'<text class="replay" x="{scale.x(op.start) - 4}" y="{y(op.caller) - 2}">×'
            f"<title>{_e(f'Stale replay: {op.caller} sent ETag {replay.etag} again after ')}"
            f"{_e(f'it was rejected with 412 in {replay.rejected.id}')}</title></text>"
        )
    parts.append("</svg>")
    resources = sorted({o.resource_id for o in ops}, key=lambda r: (len(r), r.lower()))
    children = [_short(r, root) for r in resources if r.lower() != root.lower()]
    note = f'<p class="meta">Also on this chart: {_e(", ".join(children))}</p>' if children else ""
    return (
        f'<section class="resource" id="chart-{index}">{_heading(root)}{note}'
        f'<div class="chart">{"".join(parts)}</div></section>'
    )


def _heading(resource_id: str) -> str:
    """The resource's name, then its type and group; the whole ID is the heading's title."""
    try:
        rid = parse_resource_id(resource_id)
    except InvalidResourceId:
        return f'<h3 title="{_e(resource_id)}"><span class="name">{_e(resource_id)}</span></h3>'
    where = rid.resource_group or rid.subscription
    kind = rid.type if rid.levels else "resourceGroups"
    return (
        f'<h3 title="{_e(resource_id)}"><span class="name">{_e(rid.name)}</span> '
        f'<span class="type">{_e(kind)} · {_e(where)}</span></h3>'
    )


def _marks(marks: Sequence[Mark], scale: _Scale, lane_top: dict[str, float]) -> list[str]:
    """Badges above the bars, each joined by a tick to its moment; a badge that would cover
    the one before it in its lane moves right, so simultaneous steps stay readable."""
    out: list[str] = []
    right: dict[str, float] = {}
    for mark in sorted(marks, key=lambda m: m.ts):
        top = lane_top.get(mark.writer)
        if top is None:
            continue
        x = scale.x(mark.ts)
        width = len(mark.label) * 6.0 + 8
        bx = max(x - 3, right.get(mark.writer, -math.inf) + 3)
        bx = min(bx, _WIDTH - width - 1)
        right[mark.writer] = bx + width
        colour = MARK_COLOURS.get(mark.event, "#37474f")
        on = f' data-operation="{_e(mark.operation)}"' if mark.operation else ""
        out.append(
            f'<g class="mark mark-{_e(mark.event)}" data-mark="{_e(mark.event)}" '
            f'data-writer="{_e(mark.writer)}" data-time="{isoformat(mark.ts)}"{on}>'
            f"<title>{_e(f'{_clock(mark.ts)} {mark.text}')}</title>"
            f'<line x1="{x}" y1="{top + 16}" x2="{x}" y2="{top + _BAR_AT + _BAR}" '
            f'stroke="{colour}" stroke-width="1.5"/>'
            f'<rect x="{bx}" y="{top + 2}" width="{width}" height="14" rx="3" fill="{colour}"/>'
            f'<text class="badge" x="{bx + 4}" y="{top + 13}">{_e(mark.label)}</text></g>'
        )
    return out


def _who(callers: Sequence[str], limit: int = 6) -> str:
    if len(callers) <= 2:
        return " and ".join(callers)
    shown = ", ".join(callers[:limit])
    return shown + (f" and {len(callers) - limit} more" if len(callers) > limit else "")


def _legend() -> str:
    items = [
        f'<li><span class="swatch" style="background:{colour}"></span>{_e(_OUTCOME_LABELS[k])}</li>'
        for k, colour in OUTCOME_COLOURS.items()
    ]
    items.append(
        f'<li><span class="swatch" style="background:{ABSORBED_COLOUR}"></span>'
        "Conflict armguard absorbed (its job went on and ended well)</li>"
    )
    items.append(
        f'<li><span class="swatch" style="background:{_OVERLAP_FILL}"></span>'
        "Overlapping writers (two callers writing one resource or parent/child)</li>"
    )
    items.append(
        f'<li><span class="swatch" style="background:{_STORM_FILL}"></span>Retry storm</li>'
    )
    items.append(
        f'<li><span class="swatch" style="background:{_LINK_COLOUR}"></span>'
        "Arrow: from the causing write to the conflict it caused (hover for why)</li>"
    )
    items.append('<li><b style="color:#6a1b9a">×</b> Stale replay of a rejected ETag</li>')
    items.extend(
        f'<li><span class="swatch" style="background:{colour}"></span>{_e(_MARK_LABELS[k])}</li>'
        for k, colour in MARK_COLOURS.items()
    )
    items.append("<li><b>bold lane</b>: a writer whose intents went through armguard</li>")
    return f'<ul class="legend" aria-label="Legend">{"".join(items)}</ul>'


def _headline(timeline: Timeline) -> str:
    """The run in one sentence and a row of numbers, before any chart."""
    h = timeline.headline()

    def stat(key: str, label: str, value: str, note: str = "") -> str:
        return (
            f'<div class="stat" data-stat="{key}"><div class="value">{_e(value)}</div>'
            f'<div class="label">{_e(label)}</div>'
            + (f'<div class="note">{_e(note)}</div>' if note else "")
            + "</div>"
        )

    def kinds(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {k}" for k, n in counts.items())

    stats = []
    if h["intents"]:
        stats.append(stat("intents", "intents", str(h["intents"]), kinds(h["outcomes"])))
        absorbed = h["conflicts_absorbed"]
        stats.append(
            stat(
                "conflicts_absorbed",
                "conflicts absorbed by armguard",
                str(sum(absorbed.values())),
                kinds(absorbed),
            )
        )
        surfaced = h["conflicts_surfaced"]
        stats.append(
            stat(
                "conflicts_surfaced",
                "conflicts that reached a writer",
                str(sum(surfaced.values())),
                kinds(surfaced),
            )
        )
        lost = h["lost_intents"]
        stats.append(
            stat(
                "lost_intents",
                "lost intents",
                "not known" if lost is None else str(lost),
                h["lost_intents_basis"],
            )
        )
        steps = [
            (h["rebased"], "rebased"),
            (h["dropped_stale"], "dropped stale"),
            (h["already_satisfied"], "already satisfied"),
            (h["prerequisite_transitions"], "prerequisite transitions"),
            (h["coalesced_writes"], "coalesced writes"),
        ]
        stats.append(
            stat(
                "steps",
                "steps marked on the bars",
                str(sum(n for n, _ in steps)),
                ", ".join(f"{n} {what}" for n, what in steps if n),
            )
        )
    others = h["conflicts_of_other_writers"]
    if others or not h["intents"]:
        stats.append(
            stat(
                "conflicts_of_other_writers",
                "conflicts met by writers outside armguard",
                str(sum(others.values())),
                kinds(others),
            )
        )
    stats.append(stat("operations", "operations", str(h["operations"]), f"{h['callers']} callers"))
    return (
        f'<section class="headline" aria-label="Headline"><p class="lead">{_e(h["text"])}</p>'
        f'<div class="stats">{"".join(stats)}</div></section>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str]) -> str:
    if not rows:
        return "<p>None found.</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(classes, row, strict=True))
        + "</tr>"
        for row in rows
    )
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


class _Names:
    """Resource IDs as table cells: the end of the short ID, the whole ID on hover."""

    def __init__(self, timeline: Timeline) -> None:
        self._names = fit_resource_ids({o.resource_id for o in timeline.operations}, _ID_CHARS)

    def cell(self, resource_id: str) -> str:
        name = self._names.get(resource_id) or short_resource_id(resource_id)
        return f'<span title="{_e(resource_id)}">{_e(name)}</span>'


def _summary(timeline: Timeline, names: _Names) -> str:
    rows = []
    for row in timeline.summary():
        conflicts = ", ".join(f"{k}: {v}" for k, v in row["conflicts"].items())
        rows.append(
            [
                names.cell(row["resource_id"]),
                _e(", ".join(row["writers"])),
                str(row["writes"]),
                _e(conflicts or "0"),
                str(row["failed"]),
                str(row["overlaps"]),
                str(row["retry_storms"]),
                str(row["stale_replays"]),
                _e(", ".join(row["tokenless_writers"]) or "none seen"),
            ]
        )
    return _table(
        [
            "Resource",
            "Writers",
            "Writes",
            "Conflicts by kind",
            "Other failures",
            "Overlaps",
            "Retry storms",
            "Stale replays",
            "Tokenless writers",
        ],
        rows,
        ["id", "mono", "num", "kind", "num", "num", "num", "num", "mono"],
    )


_HANDLED = {
    "absorbed": "absorbed by armguard",
    "surfaced": "ended the job (the writer was told)",
}


def _conflict_rows(timeline: Timeline) -> str:
    rows = []
    for c in timeline.conflicts:
        op = c.operation
        if c.cause is not None:
            cause = (
                f'<a href="#{_e(c.cause.id)}">{_e(c.cause.id)}</a> {_e(c.cause.caller)} '
                f"({_e(c.relation)})"
            )
        elif c.relation == "state":
            cause = "the resource's state"
        else:
            cause = "not in the log"
        rows.append(
            [
                _e(_clock(op.end if op.end is not None else op.start)),
                f'<a href="#{_e(op.id)}">{_e(op.id)}</a>',
                _e(op.caller),
                _e(f"{op.http_status or ''} {op.code or ''}".strip()),
                _e(op.kind),
                cause,
                _e(_HANDLED.get(c.handled or "", "not an armguard write")),
                _e(c.explanation),
            ]
        )
    return _table(
        [
            "Time (UTC)",
            "Operation",
            "Caller",
            "Status",
            "Kind",
            "Caused by",
            "Handled",
            "Explanation",
        ],
        rows,
        ["mono", "mono", "mono", "mono", "kind", "mono", "", ""],
    )


def render_report(timeline: Timeline, generated_at: float, title: str | None = None) -> str:
    """The whole report as one HTML document."""
    conflicts = {c.operation.id: c for c in timeline.conflicts}
    end = timeline.end or 0.0
    # Each finding belongs to one chart: sort them out once, not once per chart.
    overlaps_at: dict[str, list[Overlap]] = defaultdict(list)
    for overlap in timeline.overlaps:
        overlaps_at[timeline.family_of(overlap.resource_id)].append(overlap)
    storms_at: dict[str, list[RetryStorm]] = defaultdict(list)
    for storm in timeline.storms:
        storms_at[timeline.family_of(storm.resource_id)].append(storm)
    replays_at: dict[str, list[StaleReplay]] = defaultdict(list)
    for replay in timeline.stale_replays:
        replays_at[timeline.family_of(replay.operation.resource_id)].append(replay)
    marks_at: dict[str, list[Mark]] = defaultdict(list)
    for mark in timeline.marks:
        marks_at[timeline.family_of(mark.resource_id)].append(mark)
    start = min((timeline.start or end, *(m.ts for m in timeline.marks)), default=end)
    last = max((end, *(m.ts for m in timeline.marks)), default=end)
    scale = _Scale(start, last)
    charts = []
    for n, (root, ops) in enumerate(timeline.families(), 1):
        key = root.lower()
        charts.append(
            _chart(
                n,
                root,
                ops,
                scale=scale,
                overlaps=overlaps_at.get(key, ()),
                storms=storms_at.get(key, ()),
                replays=replays_at.get(key, ()),
                marks=marks_at.get(key, ()),
                conflicts=conflicts,
                log_end=end,
            )
        )
    files = ", ".join(str(i.get("file")) for i in timeline.inputs)
    window = (
        f"{isoformat(timeline.start)} to {isoformat(end)}"
        if timeline.start is not None
        else "empty"
    )
    meta = (
        f"{len(timeline.operations)} operations from {files or 'the given events'}; "
        f"window {window}; generated {isoformat(generated_at)} by armguard {__version__}."
    )
    names = _Names(timeline)
    storms = _table(
        ["Caller", "Resource", "Operation", "Retries", "Rate /min", "From", "To", "Kinds"],
        [
            [
                _e(s.caller),
                names.cell(s.resource_id),
                _e(s.operation),
                str(s.retries),
                str(s.rate_per_minute),
                _e(_clock(s.start)),
                _e(_clock(s.end)),
                _e(", ".join(f"{k}: {v}" for k, v in sorted(s.kinds.items()))),
            ]
            for s in timeline.storms
        ],
        ["mono", "id", "mono", "num", "num", "mono", "mono", "kind"],
    )
    overlaps = _table(
        ["From (UTC)", "To", "Callers", "Resources", "Relation", "Operations"],
        [
            [
                _e(_clock(o.start)),
                _e(_clock(o.end)),
                _e(", ".join(o.callers)),
                "<br>".join(names.cell(r) for r in o.resources),
                _e(o.relation),
                _links(o.operations),
            ]
            for o in timeline.overlaps
        ],
        ["mono", "mono", "mono", "id", "mono", "mono"],
    )
    replays = _table(
        ["Time (UTC)", "Operation", "Caller", "ETag sent again", "Rejected first in"],
        [
            [
                _e(_clock(r.operation.start)),
                f'<a href="#{_e(r.operation.id)}">{_e(r.operation.id)}</a>',
                _e(r.operation.caller),
                _e(r.etag),
                f'<a href="#{_e(r.rejected.id)}">{_e(r.rejected.id)}</a> by {_e(r.rejected.caller)}',
            ]
            for r in timeline.stale_replays
        ],
        ["mono", "mono", "mono", "mono", "mono"],
    )
    tokenless = _table(
        ["Caller", "Resource", "Writes", "How it was determined"],
        [
            [
                _e(t.caller),
                names.cell(t.resource_id),
                str(t.writes),
                _e(t.to_json()["determination"]),
            ]
            for t in timeline.tokenless
        ],
        ["mono", "id", "num", ""],
    )
    axis = (
        f"One time axis (UTC) for every chart: {isoformat(scale.start)} to "
        f"{isoformat(_clamp(scale.start + scale.span))}."
        if timeline.operations
        else ""
    )
    notes = [
        *timeline.notes(),
        "Only writes (PUT/PATCH, DELETE, POST actions) reach the Activity Log; reads and the "
        "ETag a writer read are visible only in job events.",
    ]
    notes_html = '<ul class="findings">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
    template = Template(
        package_files.files("armguard.diagnose").joinpath("report.html").read_text("utf-8")
    )
    return template.substitute(
        title=_e(title or "armguard timeline"),
        meta=_e(meta),
        headline=_headline(timeline),
        axis=_e(axis),
        legend=_legend(),
        charts="\n".join(charts) or "<p>No operations in the selected window.</p>",
        summary=_summary(timeline, names),
        overlaps=overlaps,
        conflicts=_conflict_rows(timeline),
        storms=storms,
        replays=replays,
        tokenless=tokenless,
        notes=notes_html,
    )
