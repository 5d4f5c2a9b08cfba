"""The specs' own examples replayed against a served emulator (see ``replay.py``): every
example answers a status it documents and every key it documents, except the keys listed
in the manifest as example artefacts (with the reason) or as known differences (which must
really be missing, and which also appear in docs/fidelity.md); at least 95 % conform fully."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import Outcome, manifest, replay

ENTRIES = manifest()
FIDELITY = Path(__file__).resolve().parents[2] / "docs" / "fidelity.md"


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {entry["file"]: replay(entry) for entry in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_example_replays_as_documented(entry: dict[str, Any], outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[entry["file"]]
    assert outcome.status_ok, (outcome.status, outcome.statuses, outcome.detail)
    assert not outcome.unexplained, sorted(outcome.unexplained)
    for key in outcome.known:
        # A known difference that is no longer missing must leave the list (and the docs).
        assert any(m == key or m.startswith(key + ".") for m in outcome.missing), key


def test_at_least_95_percent_conform_and_the_docs_say_how_many(
    outcomes: dict[str, Outcome],
) -> None:
    passed = sum(o.passed for o in outcomes.values())
    assert passed / len(outcomes) >= 0.95, {f: o.missing for f, o in outcomes.items()}
    docs = FIDELITY.read_text()
    assert f"**{passed} of {len(outcomes)}**" in docs
    for entry in ENTRIES:
        for key in entry.get("known", {}):
            assert f"`{key}`" in docs, key
