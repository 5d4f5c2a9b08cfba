"""A batch put back in the queue by a storm is a step on its writer's lane in the timeline."""

from __future__ import annotations

import json
from pathlib import Path

from armguard.diagnose.report import MARK_COLOURS, render_report
from armguard.diagnose.timeline import load_timeline

RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.Network/virtualNetworks/vnet1"
)


def _event(ts: str, event: str, **fields: object) -> str:
    line = {"ts": ts, "job_id": "j1", "resource_id": RID, "writer": "alice", "event": event}
    return json.dumps({**line, **fields})


def test_a_requeue_is_a_mark_that_says_why_and_when_it_resumes(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                _event("2026-01-01T00:00:00Z", "claimed", fence=1),
                _event("2026-01-01T00:00:01Z", "write", verb="PUT", fence=1),
                _event("2026-01-01T00:00:01Z", "conflict", status=429, kind="throttled"),
                _event(
                    "2026-01-01T00:00:02Z",
                    "requeued",
                    kind="throttled",
                    delay=64.2,
                    message="requeued: retry budget exhausted, resumes after 64 s — "
                    "The caller was throttled (TooManyRequests: Storm.)",
                ),
                _event("2026-01-01T00:01:07Z", "claimed", fence=2),
                _event("2026-01-01T00:01:08Z", "write", verb="PUT", fence=2),
                _event("2026-01-01T00:01:09Z", "verified", detail={"verified": True}),
                _event("2026-01-01T00:01:09Z", "applied"),
            ]
        )
        + "\n"
    )
    t = load_timeline([str(events)])
    (mark,) = [m for m in t.marks if m.event == "requeued"]
    assert mark.label == "requeued"
    assert mark.writer == "alice"
    assert "requeued: retry budget exhausted, resumes after 64 s" in mark.text
    assert "TooManyRequests" not in mark.text  # the refusal is on the conflict itself
    assert t.headline()["outcomes"] == {"applied": 1}
    # In the report it is a badge of its own colour, explained in the legend.
    html = render_report(t, generated_at=0.0)
    own = MARK_COLOURS["requeued"]
    assert own not in {c for e, c in MARK_COLOURS.items() if e != "requeued"}
    assert f'fill="{own}"' in html
    assert "Requeued: the retry budget ran out" in html
