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
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources as package_files
from string import Template

from armguard import __version__
from armguard.clock import isoformat
from armguard.diagnose.timeline import (
    Conflict,
    Operation,
    Overlap,
    RetryStorm,
    StaleReplay,
    Timeline,
)

__all__ = ["OUTCOME_COLOURS", "render_report"]

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
_LINK_COLOUR = "#6a1b9a"
_OVERLAP_FILL = "#ffe082"
_STORM_FILL = "#ffccbc"

_WIDTH = 1240
_LABEL = 250
_RIGHT = 24
_TOP = 34
_LANE = 34
_BAR = 16
_MIN_BAR = 4
_MAX_LINKS = 60
"""Operation links listed in one table cell; an overlap of thousands says how many more."""
_FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _clamp(ts: float) -> float:
    return min(max(ts, _FIRST), _LAST)


def _clock(ts: float) -> str:
    dt = datetime.fromtimestamp(_clamp(ts), tz=UTC)
    return f"{dt:%H:%M:%S}.{dt.microsecond // 1000:03d}"


def _tick(ts: float, span: float) -> str:
    """An axis label: the time of day, with the date when the chart spans more than a day."""
    if span <= 86400:
        return _clock(ts)
    dt = datetime.fromtimestamp(_clamp(ts), tz=UTC)
    return f"{dt.year:04d}-{dt:%m-%d %H:%M}"


def _links(ids: Sequence[str]) -> str:
    shown = ", ".join(f'<a href="#{_e(i)}">{_e(i)}</a>' for i in ids[:_MAX_LINKS])
    more = len(ids) - _MAX_LINKS
    return shown + (f" … and {more} more" if more > 0 else "")


def _short(resource_id: str, root: str) -> str:
    if resource_id.lower() == root.lower():
        return resource_id.rsplit("/", 1)[-1]
    return resource_id[len(root) :].lstrip("/") or resource_id


class _Scale:
    def __init__(self, start: float, end: float) -> None:
        span = max(end - start, 1.0)
        pad = span * 0.03
        # Padding must not leave the calendar: a log can hold events dated 0001 or 9999.
        self.start = _clamp(start - pad)
        self.span = max(_clamp(end + pad) - self.start, 1.0)
        self.width = _WIDTH - _LABEL - _RIGHT

    def x(self, ts: float) -> float:
        return round(_LABEL + (ts - self.start) / self.span * self.width, 1)


def _op_title(op: Operation) -> str:
    lines = [
        f"{op.id}: {op.caller}",
        f"{op.operation} on {op.resource_id}",
        f"{_clock(op.start)} → {_clock(op.end) if op.end is not None else 'still running'}",
        f"outcome: {op.outcome}"
        + (f" ({op.http_status} {op.code or ''})" if op.http_status else ""),
    ]
    if op.kind:
        lines.append(f"kind: {op.kind}")
    if op.etag_sent:
        lines.append(f"ETag sent: {op.etag_sent}")
    return "\n".join(lines)


def _chart(
    index: int,
    root: str,
    ops: list[Operation],
    *,
    overlaps: Sequence[Overlap],
    storms: Sequence[RetryStorm],
    replays: Sequence[StaleReplay],
    conflicts: dict[str, Conflict],
    log_end: float,
) -> str:
    lane: dict[str, int] = {}
    for op in ops:
        lane.setdefault(op.caller, len(lane))
    ends = [op.end if op.end is not None else log_end for op in ops]
    scale = _Scale(min(o.start for o in ops), max(ends))
    height = _TOP + _LANE * len(lane) + 12
    ids = {op.id for op in ops}

    def y(caller: str) -> float:
        return _TOP + lane[caller] * _LANE + (_LANE - _BAR) / 2

    parts: list[str] = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="Timeline of {_e(root)}" data-resource="{_e(root)}">',
        f'<defs><marker id="arrow-{index}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{_LINK_COLOUR}"/></marker></defs>',
    ]
    # Time axis.
    for n in range(6):
        ts = scale.start + scale.span * n / 5
        x = scale.x(ts)
        parts.append(
            f'<line x1="{x}" y1="{_TOP - 6}" x2="{x}" y2="{height - 8}" stroke="#e3e7eb"/>'
            f'<text class="tick" x="{x}" y="{_TOP - 12}" text-anchor="middle">'
            f"{_tick(ts, scale.span)}</text>"
        )
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
    for caller, n in lane.items():
        ly = _TOP + n * _LANE + _LANE / 2 + 4
        label = caller if len(caller) <= 34 else caller[:33] + "…"
        parts.append(
            f'<text class="lane" x="8" y="{ly}"><title>{_e(caller)}</title>{_e(label)}</text>'
        )
    # Bars.
    for op in ops:
        x1 = scale.x(op.start)
        x2 = scale.x(op.end if op.end is not None else log_end)
        colour = OUTCOME_COLOURS.get(op.outcome, OUTCOME_COLOURS["failed"])
        by = y(op.caller)
        parts.append(
            f'<g class="op op-{op.outcome}" id="{_e(op.id)}" data-op="{_e(op.id)}" '
            f'data-caller="{_e(op.caller)}" data-outcome="{op.outcome}">'
            f'<rect x="{x1}" y="{by}" width="{max(x2 - x1, _MIN_BAR)}" height="{_BAR}" '
            f'fill="{colour}" shape-rendering="crispEdges"/>'
            f"<title>{_e(_op_title(op))}</title></g>"
        )
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
            f'<circle class="marker-conflict" data-conflict="{_e(op.id)}" cx="{cx}" cy="{cy}" '
            f'r="4"><title>{_e(conflict.explanation)}</title></circle>'
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
        f'<section class="resource" id="chart-{index}"><h3>{_e(root)}</h3>{note}'
        f'<div class="chart">{"".join(parts)}</div></section>'
    )


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
    return f'<ul class="legend" aria-label="Legend">{"".join(items)}</ul>'


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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(timeline: Timeline) -> str:
    rows = []
    for row in timeline.summary():
        conflicts = ", ".join(f"{k}: {v}" for k, v in row["conflicts"].items())
        rows.append(
            [
                _e(row["resource_id"]),
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


def _conflict_rows(timeline: Timeline) -> str:
    rows = []
    for c in timeline.conflicts:
        op = c.operation
        cause = (
            f'<a href="#{_e(c.cause.id)}">{_e(c.cause.id)}</a> {_e(c.cause.caller)} '
            f"({_e(c.relation)})"
            if c.cause is not None
            else "not in the log"
        )
        rows.append(
            [
                _e(_clock(op.end if op.end is not None else op.start)),
                f'<a href="#{_e(op.id)}">{_e(op.id)}</a>',
                _e(op.caller),
                _e(f"{op.http_status or ''} {op.code or ''}".strip()),
                _e(op.kind),
                cause,
                _e(c.explanation),
            ]
        )
    return _table(
        ["Time (UTC)", "Operation", "Caller", "Status", "Kind", "Caused by", "Explanation"],
        rows,
        ["mono", "mono", "mono", "mono", "kind", "mono", ""],
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
    charts = []
    for n, (root, ops) in enumerate(timeline.families(), 1):
        key = root.lower()
        charts.append(
            _chart(
                n,
                root,
                ops,
                overlaps=overlaps_at.get(key, ()),
                storms=storms_at.get(key, ()),
                replays=replays_at.get(key, ()),
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
    storms = _table(
        ["Caller", "Resource", "Operation", "Retries", "Rate /min", "From", "To", "Kinds"],
        [
            [
                _e(s.caller),
                _e(s.resource_id),
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
                "<br>".join(_e(r) for r in o.resources),
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
                _e(t.resource_id),
                str(t.writes),
                _e(t.to_json()["determination"]),
            ]
            for t in timeline.tokenless
        ],
        ["mono", "id", "num", ""],
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
        legend=_legend(),
        charts="\n".join(charts) or "<p>No operations in the selected window.</p>",
        summary=_summary(timeline),
        overlaps=overlaps,
        conflicts=_conflict_rows(timeline),
        storms=storms,
        replays=replays,
        tokenless=tokenless,
        notes=notes_html,
    )
