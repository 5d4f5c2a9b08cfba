"""Every real error text in ``corpus/errors.jsonl`` is explained as the kind a person would give it.

Run as a script (``python tests/diagnose/test_corpus.py``) to print the accuracy per kind as
JSON, for the whole corpus and for the held-out entries alone; docs/explain.md records both.

Entries marked ``held_out`` were added after the classifier was tuned on the others, and were
classified before any change was made for them; docs/explain.md gives that first result too.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from armguard.arm.classify import ConflictKind
from armguard.diagnose.explain import NoArmError, explain_text

CORPUS = Path(__file__).parent / "corpus" / "errors.jsonl"


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line.strip()]


ENTRIES = load_corpus()


def accuracy_by_kind(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: dict[str, list[str]] = {}
    for entry in entries:
        kind = entry["expected_kind"]
        total[kind] += 1
        try:
            got = explain_text(entry["text"]).kind.value
        except NoArmError:
            got = "no error found"
        if got == kind:
            right[kind] += 1
        else:
            misses.setdefault(kind, []).append(f"{entry['id']} -> {got}")
    table: dict[str, dict[str, Any]] = {}
    for kind in ConflictKind:
        if total[kind.value]:
            table[kind.value] = {
                "entries": total[kind.value],
                "correct": right[kind.value],
                "accuracy": round(right[kind.value] / total[kind.value], 3),
                "misses": misses.get(kind.value, []),
            }
    table["all"] = {
        "entries": sum(total.values()),
        "correct": sum(right.values()),
        "accuracy": round(sum(right.values()) / sum(total.values()), 3),
        "misses": [m for ms in misses.values() for m in ms],
    }
    return table


def test_corpus_is_well_formed_and_covers_every_kind() -> None:
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) == len(set(ids))
    assert len(ENTRIES) >= 60
    for entry in ENTRIES:
        assert {"id", "source", "text", "expected_kind"} <= entry.keys()
        assert entry.keys() <= {"id", "source", "text", "expected_kind", "notes", "held_out"}
        assert entry["expected_kind"] in {k.value for k in ConflictKind}
        assert entry["text"].strip()
    per_kind = Counter(e["expected_kind"] for e in ENTRIES)
    assert all(per_kind[k.value] >= 4 for k in ConflictKind), per_kind


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_real_error_is_explained_as_its_kind(entry: dict[str, Any]) -> None:
    result = explain_text(entry["text"])
    assert result.kind.value == entry["expected_kind"], result.classification.reason
    # Every explanation must carry something to do and something not to do.
    assert result.recovery
    assert result.wrong_fix
    assert any(c.tool == "az" for c in result.next_commands)


def test_accuracy_is_complete_for_every_kind() -> None:
    table = accuracy_by_kind(ENTRIES)
    assert table["all"]["misses"] == []


def test_held_out_entries_come_from_the_sdks_the_corpus_lacked() -> None:
    held_out = [e for e in ENTRIES if e.get("held_out")]
    python = [
        e for e in held_out if "azure.core.exceptions" in e["text"] or "Error: (" in e["text"]
    ]
    js = [e for e in held_out if "RestError" in e["text"]]
    assert len(python) >= 3
    assert len(js) >= 3


if __name__ == "__main__":
    report = {
        "corpus": accuracy_by_kind(ENTRIES),
        "held_out": accuracy_by_kind([e for e in ENTRIES if e.get("held_out")]),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
