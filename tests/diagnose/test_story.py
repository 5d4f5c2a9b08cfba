"""The story of ``armguard apply examples/incidents.yaml --emulator``, as the timeline tells it.

The data are that run's own files (``--report``): the emulator's Activity Log and the job
events. The model must say what the run did (12 intents, 2 state conflicts absorbed, nothing
lost), mark each job step, and never report armguard's own writes as a problem.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from armguard.diagnose.report import render_report
from armguard.diagnose.timeline import Timeline, load_timeline

DATA = Path(__file__).parent / "data"
ACTIVITY = DATA / "incidents-activity.json"
EVENTS = DATA / "incidents-events.jsonl"
JOB_WRITERS = {
    "tag-normalizer",
    "terraform-pipeline",
    "queue-worker",
    "policy-remediation",
    "team-app",
    "team-data",
    "team-web",
    "team-jobs",
    "capacity-runbook",
}


def _demo() -> Timeline:
    return load_timeline([str(ACTIVITY), str(EVENTS)])


def test_the_headline_counts_intents_outcomes_absorbed_conflicts_and_no_lost_intent() -> None:
    h = _demo().headline()
    assert h["intents"] == 12
    assert h["outcomes"] == {"already_satisfied": 1, "applied": 10, "dropped_stale": 1}
    assert h["conflicts_absorbed"] == {"state_prerequisite": 2}
    assert h["conflicts_surfaced"] == {}
    assert h["conflicts_of_other_writers"] == {}
    assert h["lost_intents"] == 0
    assert (h["rebased"], h["dropped_stale"], h["already_satisfied"]) == (1, 1, 1)
    assert h["prerequisite_transitions"] == 4  # deallocate and start, on each VM
    assert h["coalesced_writes"] == 1
    assert h["text"].startswith("12 intents: 1 already_satisfied, 10 applied, 1 dropped_stale.")
    assert "Lost intents: 0." in h["text"]


def test_lost_intents_are_zero_only_when_the_events_show_it(tmp_path: Path) -> None:
    lines = EVENTS.read_text().splitlines()
    unverified = tmp_path / "unverified.jsonl"
    unverified.write_text("\n".join(x for x in lines if '"event":"verified"' not in x) + "\n")
    h = load_timeline([str(ACTIVITY), str(unverified)]).headline()
    assert h["lost_intents"] is None
    assert "not verified" in h["lost_intents_basis"]
    # A job whose last events are missing (a log cut short) has no outcome: not known either.
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(x for x in lines if '"writer":"team-jobs"' not in x or
                             '"event":"applied"' not in x) + "\n")  # fmt: skip
    h = load_timeline([str(ACTIVITY), str(cut)]).headline()
    assert h["lost_intents"] is None
    assert "no outcome" in h["lost_intents_basis"]
    # Without job events there are no intents to count.
    h = load_timeline([str(ACTIVITY)]).headline()
    assert (h["intents"], h["lost_intents"]) == (0, None)


def test_armguard_own_writes_are_never_a_finding() -> None:
    t = _demo()
    own = {o.caller for o in t.operations if o.own}
    assert own == JOB_WRITERS - {"tag-normalizer"}  # its write rode terraform-pipeline's
    # The coalesced write is one operation, not two writers overlapping.
    assert not t.overlaps
    assert not t.tokenless
    (batch,) = [o for o in t.operations if o.coalesced]
    assert batch.source == "both"
    assert {batch.caller, *(w for _, w in batch.coalesced)} == {
        "tag-normalizer",
        "terraform-pipeline",
    }
    assert all(c.handled == "absorbed" for c in t.conflicts)
    # The unguarded writers of the world are not armguard's.
    assert not [o for o in t.operations if o.own and o.caller not in JOB_WRITERS]


def test_a_state_conflict_is_caused_by_the_state_not_by_the_write_that_created_the_vm() -> None:
    t = _demo()
    assert len(t.conflicts) == 2
    for c in t.conflicts:
        assert (c.operation.kind, c.operation.code) == ("state_prerequisite", "OperationNotAllowed")
        assert c.cause is None
        assert c.relation == "state"
        assert "own state" in c.explanation
        assert "world-setup" not in c.explanation
        assert c.to_json()["cause"] is None


def test_each_job_step_is_a_mark_on_its_writer_lane() -> None:
    t = _demo()
    marks = {(m.event, m.label, m.writer, m.resource_id.rsplit("/", 1)[-1]) for m in t.marks}
    assert marks == {
        ("already_satisfied", "satisfied", "tag-normalizer", "mediaeast"),
        ("coalesced", "2 intents", "terraform-pipeline", "default"),
        ("rebased", "rebased", "queue-worker", "nsg-app"),
        ("dropped_stale", "dropped", "queue-worker", "nsg-app"),
        ("prerequisite", "deallocate", "capacity-runbook", "api-01"),
        ("prerequisite", "deallocate", "capacity-runbook", "api-02"),
        ("prerequisite", "start", "capacity-runbook", "api-01"),
        ("prerequisite", "start", "capacity-runbook", "api-02"),
    }
    (coalesced,) = [m for m in t.marks if m.event == "coalesced"]
    assert coalesced.operation == next(o.id for o in t.operations if o.coalesced)
    data = t.to_json()
    assert len(data["marks"]) == 8
    assert data["headline"]["lost_intents"] == 0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, str] = {}
        self.marks: list[tuple[str, str]] = []
        self.ticks: list[list[str]] = []
        self.ops: dict[str, dict[str, str | None]] = {}
        self.headings: list[tuple[str, str]] = []
        self._in: str | None = None
        self._stat: str | None = None
        self._title: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "div" and a.get("data-stat"):
            self._stat = a["data-stat"]
        elif tag == "div" and cls == "value" and self._stat:
            self._in = "stat"
        elif tag == "svg":
            self.ticks.append([])
        elif tag == "text" and cls == "tick":
            self.ticks[-1].append(str(a["data-ts"]))
        elif tag == "g" and a.get("data-mark"):
            self.marks.append((str(a["data-mark"]), str(a["data-writer"])))
        elif tag == "g" and a.get("data-op"):
            self.ops[str(a["data-op"])] = a
        elif tag == "h3":
            self._title = str(a.get("title"))
        elif tag == "span" and cls == "name" and self._title:
            self._in = "name"

    def handle_data(self, data: str) -> None:
        if self._in == "stat" and self._stat:
            self.stats[self._stat] = data
            self._in = self._stat = None
        elif self._in == "name" and self._title:
            self.headings.append((data, self._title))
            self._in = self._title = None


def test_the_report_leads_with_the_headline_and_shares_one_axis() -> None:
    t = _demo()
    page = render_report(t, generated_at=0.0)
    seen = _Page()
    seen.feed(page)
    assert page.index('class="headline"') < page.index('class="timeline"')
    assert seen.stats["intents"] == "12"
    assert seen.stats["conflicts_absorbed"] == "2"
    assert seen.stats["conflicts_surfaced"] == "0"
    assert seen.stats["lost_intents"] == "0"
    # One axis: every chart has the same ticks, at most seven, in order, one second or more
    # apart (the run took 18 s).
    assert len(seen.ticks) == len(t.families()) == 7
    assert all(ticks == seen.ticks[0] for ticks in seen.ticks)
    assert 3 <= len(seen.ticks[0]) <= 7
    assert seen.ticks[0] == sorted(seen.ticks[0])
    # Every step is drawn, on the lane of the job's writer.
    assert sorted(seen.marks) == sorted((m.event, m.writer) for m in t.marks)
    # Own writes are drawn as such; their absorbed conflicts are not red "problems".
    for op in t.operations:
        assert seen.ops[op.id]["data-own"] == ("true" if op.own else "false")
    for c in t.conflicts:
        assert seen.ops[c.operation.id]["data-handled"] == "absorbed"
    # Charts are headed by the resource's name; the whole ID is the heading's title.
    assert ("vnet-prod", next(r for r, _ in t.families() if r.endswith("vnet-prod"))) in (
        seen.headings
    )
    assert all(len(name) < 30 for name, _ in seen.headings)
