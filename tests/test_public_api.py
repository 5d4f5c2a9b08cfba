"""The public Python API: what ``armguard`` exports, the examples in docs/python.md (run as
written, against a served emulator and a real SQLite store), and the errors bad input gets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import armguard
from armguard import (
    ApiVersionRequired,
    Coordinator,
    DeleteIntent,
    IntentError,
    InvalidResourceId,
    JobNotFound,
    JobState,
    MergeIntent,
    Submission,
    TagsIntent,
    WaitTimeout,
)
from armguard.clock import ManualClock

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
VNET = f"{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet1"


def _documented_names() -> list[str]:
    """The first column of the table that follows "armguard.__all__ is exactly this list"."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("`armguard.__all__` is exactly this list", 1)[1].split("\n\n", 2)[1]
    names: list[str] = []
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        names += re.findall(r"`([A-Za-z_]+)`", first)
    return names


def _examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_all_is_exactly_what_docs_python_md_lists() -> None:
    documented = _documented_names()
    assert len(documented) == len(set(documented))
    assert sorted(armguard.__all__) == sorted(documented)
    for name in armguard.__all__:
        assert getattr(armguard, name) is not None
    namespace: dict[str, Any] = {}
    exec("from armguard import *", namespace)
    assert set(armguard.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = armguard.Nope  # type: ignore[attr-defined]


def test_the_exports_are_the_library_objects_themselves() -> None:
    from armguard.client import Coordinator as ClientCoordinator
    from armguard.coordinator.intents import TagsIntent as Tags
    from armguard.coordinator.waiting import WaitTimeout as Timeout

    assert (Coordinator, TagsIntent, WaitTimeout) == (ClientCoordinator, Tags, Timeout)
    assert issubclass(WaitTimeout, TimeoutError)
    assert issubclass(JobNotFound, LookupError)
    assert all(issubclass(e, ValueError) for e in (IntentError, InvalidResourceId))


def test_importing_armguard_does_not_load_the_coordinator() -> None:
    # The emulator and `armguard explain` import armguard.arm…; the API must not slow them.
    code = (
        "import sys, armguard, armguard.arm.ids\n"
        "assert 'armguard.coordinator.worker' not in sys.modules, sorted(sys.modules)\n"
        "assert 'armguard.client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("n", range(len(_examples())))
def test_docs_python_md_example_runs(n: int, tmp_path: Path) -> None:
    """Each ```python block of docs/python.md, as written, in a fresh directory (its jobs.db
    lands there), warnings as errors."""
    script = tmp_path / "example.py"
    script.write_text(_examples()[n], encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "jobs.db").exists()


def test_docs_has_the_examples_the_brief_promises() -> None:
    examples = "\n".join(_examples())
    for needed in ("emulator(", ".wait(", "wait_async(", ".worker(", "submit_many(", "WaitTimeout"):
        assert needed in examples, needed
    assert "pip install ./armguard" in DOC.read_text(encoding="utf-8")


@pytest.fixture
def coordinator(tmp_path: Path) -> Any:
    with Coordinator(str(tmp_path / "jobs.db"), writer="tests", clock=ManualClock()) as c:
        yield c


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.submit("/subscriptions/x/resourceGroups", DeleteIntent()), InvalidResourceId, "needs a name"),
        (lambda c: c.submit(SUB, DeleteIntent()), ValueError, "is a subscription"),
        (lambda c: c.submit(VNET, TagsIntent({"a": "1"}), writer="  "), ValueError, "writer name is required"),
        (lambda c: c.submit(VNET, {"kind": "paint"}), IntentError, "unknown intent kind 'paint'"),
        (lambda c: c.submit(VNET, "{not json"), IntentError, "not valid JSON"),
        (lambda c: c.submit(VNET, 42), IntentError, "must be a JSON object"),
        (lambda c: c.submit(VNET, DeleteIntent(), on_stale="ignore"), ValueError, "on_stale must be one of rebase, drop, fail, not 'ignore'"),
        (lambda c: c.submit(VNET, DeleteIntent(), idempotency_key=" "), ValueError, "idempotency key cannot be blank"),
        (lambda c: c.submit(VNET, DeleteIntent(), baseline_etag=""), ValueError, "baseline ETag cannot be blank"),
        (lambda c: c.submit(VNET, DeleteIntent(), baseline=["etag"]), ValueError, "resource body the writer read"),
        (lambda c: c.submit(f"{SUB}/resourceGroups/rg/providers/Contoso.Widgets/widgets/w", DeleteIntent()), ApiVersionRequired, "no default api-version for 'Contoso.Widgets/widgets'"),
        (lambda c: c.wait("", timeout=1), ValueError, "a job is a Job or its id (a non-empty string), not ''"),
        (lambda c: c.wait("some-id", timeout=-1), ValueError, "timeout must be seconds >= 0"),
        (lambda c: c.wait("some-id", timeout=float("nan")), ValueError, "timeout must be seconds >= 0"),
        (lambda c: c.jobs("finished"), ValueError, "unknown job state 'finished'; known: queued, running, done"),
        (lambda c: c.worker("ftp://127.0.0.1:1"), ValueError, "must be an http(s) URL"),
        (lambda c: c.worker("http://arm.example.com"), ValueError, "plain http is only allowed"),
    ],
)  # fmt: skip
def test_bad_input_is_a_value_error_that_says_what_is_wrong(
    coordinator: Coordinator, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call(coordinator)
    assert coordinator.jobs() == []


def test_a_bad_intent_is_refused_when_it_is_built() -> None:
    with pytest.raises(IntentError, match="non-empty JSON object"):
        MergeIntent({})
    with pytest.raises(IntentError, match="both set and removed: env"):
        TagsIntent({"env": "prod"}, ("env",))


def test_one_bad_submission_queues_none_of_the_list_and_says_which(
    coordinator: Coordinator,
) -> None:
    items = [
        Submission(VNET, TagsIntent({"a": "1"})),
        Submission(VNET, TagsIntent({"b": "2"})),
        Submission("/nope", TagsIntent({"c": "3"})),
    ]
    with pytest.raises(InvalidResourceId) as caught:
        coordinator.submit_many(items)
    assert "in submission 2 of the list" in "\n".join(caught.value.__notes__)
    assert coordinator.jobs() == []
    with pytest.raises(TypeError, match="Submission objects, not dict"):
        coordinator.submit_many([{"resource_id": VNET}])  # type: ignore[list-item]
    assert coordinator.submit_many([]) == []


def test_unknown_job_and_unusable_store(coordinator: Coordinator, tmp_path: Path) -> None:
    with pytest.raises(JobNotFound, match="no job 'nope' in this store"):
        coordinator.wait("nope", timeout=5)
    with pytest.raises(JobNotFound, match="no job 'nope'"):
        coordinator.events("nope")
    with pytest.raises(ValueError, match="unsupported store URL"):
        Coordinator("mysql://db/jobs")
    with pytest.raises(ValueError, match="does not exist"):
        Coordinator(str(tmp_path / "missing" / "jobs.db"))


def test_a_wait_past_its_timeout_says_the_state_and_carries_the_job(
    coordinator: Coordinator,
) -> None:
    job = coordinator.submit(VNET, TagsIntent({"a": "1"}), writer="bob")
    with pytest.raises(WaitTimeout) as caught:
        coordinator.wait(job, timeout=0)  # on a ManualClock nobody advances: at once
    assert caught.value.job.id == job.id
    assert caught.value.job.state is JobState.QUEUED
    assert str(caught.value) == (
        f"job {job.id} (tags on {VNET}) is still queued after 0 s; "
        "is a worker running on this store?"
    )
    other = coordinator.submit(VNET, TagsIntent({"b": "2"}))
    with pytest.raises(
        WaitTimeout, match=r"still queued after 0 s; .*\(1 more job\(s\) also pending\)"
    ):
        coordinator.wait_all([job, other], timeout=0)
