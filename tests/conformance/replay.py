"""Replay the specs' own examples (``examples/manifest.json``) against a served emulator and
compare what it answers with what the example documents: the status code must be one the
example lists, and every key the example's body shows (through nested objects, to depth 3,
not into arrays) must be in the emulator's. PUT and PATCH are compared on the resource read
back once its operation ended, as a client sees it.

``python tests/conformance/replay.py`` prints each example's outcome and the pass rate per
provider as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from armguard.arm.errors import ArmError
from armguard.clock import ManualClock
from armguard.emulator.catalog import newest_version
from armguard.emulator.routing import CollectionRoute, ListRoute, ResourceRoute, route
from armguard.testing import emulator, make_token

EXAMPLES = Path(__file__).resolve().parent / "examples"
SUB = "00000000-0000-0000-0000-00000000c0f1"
DEPTH = 3
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass
class Outcome:
    file: str
    provider: str
    status: int
    statuses: list[str]
    missing: set[str] = field(default_factory=set)
    artefacts: dict[str, str] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def status_ok(self) -> bool:
        return str(self.status) in self.statuses

    @property
    def unexplained(self) -> set[str]:
        return {k for k in self.missing if not _under(k, {**self.artefacts, **self.known})}

    @property
    def passed(self) -> bool:
        """Conformant: the status is listed and nothing is missing but example artefacts."""
        return self.status_ok and all(_under(k, self.artefacts) for k in self.missing)


def _under(path: str, roots: dict[str, str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one (``patchStatus.x`` under
    ``patchStatus``)."""
    return any(path == root or path.startswith(root + ".") for root in roots)


def manifest() -> list[dict[str, Any]]:
    return list(json.loads((EXAMPLES / "manifest.json").read_text())["examples"])


def key_paths(value: Any, prefix: str = "", depth: int = DEPTH) -> Iterator[str]:
    if not isinstance(value, dict) or depth == 0:
        return
    for key, item in value.items():
        path = f"{prefix}{key}"
        yield path
        yield from key_paths(item, f"{path}.", depth - 1)


def _deep_replace(value: Any, swaps: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in swaps.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_deep_replace(v, swaps) for v in value]
    if isinstance(value, dict):
        return {k: _deep_replace(v, swaps) for k, v in value.items()}
    return value


def _fill(template: str, values: dict[str, str]) -> str:
    for _ in range(3):  # a value may itself hold a placeholder ({scope} → {subscriptionId})
        template = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    return template


def _version_for(path: str) -> str:
    try:
        target = route(path)
    except ArmError:
        return "2024-01-01"
    if isinstance(target, ResourceRoute):
        return newest_version(target.id.type)
    if isinstance(target, CollectionRoute):
        return newest_version(target.parent.type)
    if isinstance(target, ListRoute) and target.namespace and target.type:
        return newest_version(f"{target.namespace}/{target.type}")
    return "2024-01-01"


def _example_subscription(params: dict[str, Any]) -> str | None:
    if isinstance(params.get("subscriptionId"), str):
        return str(params["subscriptionId"])
    scope = params.get("scope")
    match = re.match(r"/?subscriptions/([^/]+)", scope) if isinstance(scope, str) else None
    return match.group(1) if match else None


def replay(entry: dict[str, Any]) -> Outcome:
    example = json.loads((EXAMPLES / entry["file"]).read_text())
    params: dict[str, Any] = {**example["parameters"], **entry.get("parameters", {})}
    swaps = dict(entry.get("replace", {}))
    original_sub = _example_subscription(example["parameters"])
    if original_sub:
        swaps[original_sub] = SUB
    values = {k: _deep_replace(v, swaps) for k, v in params.items() if isinstance(v, str)}
    values["subscriptionId"] = SUB
    group = params.get("resourceGroupName") or entry.get("resourceGroup")
    if group:
        values["resourceGroupName"] = group
    outcome = Outcome(
        file=entry["file"],
        provider=entry["file"].split("/", 1)[0],
        status=0,
        statuses=list(example["responses"]),
        artefacts=dict(entry.get("artefacts", {})),
        known=dict(entry.get("known", {})),
    )
    with (
        emulator(clock=ManualClock(), time_scale=0, seed=11) as arm,
        httpx.Client(
            base_url=arm.base_url,
            headers={"Authorization": f"Bearer {make_token('conformance@example.com')}"},
            timeout=30,
        ) as http,
    ):
        if group and not entry.get("noGroup"):
            made = http.put(
                f"/subscriptions/{SUB}/resourcegroups/{group}",
                params={"api-version": "2024-03-01"},
                json={"location": "westus"},
            )
            made.raise_for_status()
        for step in entry.get("setup", []):
            path = _fill(step["path"], values)
            body = json.loads(_fill(json.dumps(step["body"]), values))
            done = http.put(path, params={"api-version": _version_for(path)}, json=body)
            if done.status_code >= 300:
                outcome.detail = f"setup {path}: {done.status_code} {done.text[:300]}"
                return outcome
        path = _fill(entry["path"], values)
        if not path.startswith("/"):
            path = "/" + path
        query = {"api-version": str(params["api-version"])}
        body = _deep_replace(params.get(entry["body"]), swaps) if entry.get("body") else None
        answer = http.request(entry["method"], path, params=query, json=body)
        outcome.status = answer.status_code
        if not outcome.status_ok:
            outcome.detail = answer.text[:500]
            return outcome
        documented = example["responses"].get(str(answer.status_code), {}).get("body")
        if not documented:
            documented = example["responses"].get("200", {}).get("body")
        if not documented:
            return outcome
        if entry["method"] in ("PUT", "PATCH"):
            answer = http.get(path, params=query)
        got = answer.json() if answer.content else {}
        outcome.missing = set(key_paths(documented)) - set(key_paths(got))
        return outcome


def main() -> int:
    outcomes = [replay(entry) for entry in manifest()]
    providers: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        providers.setdefault(outcome.provider, []).append(outcome)
    report = {
        "examples": [
            {
                "file": o.file,
                "status": o.status,
                "passed": o.passed,
                "missing": sorted(o.missing),
                "detail": o.detail,
            }
            for o in outcomes
        ],
        "pass_rate": {
            name: f"{sum(o.passed for o in group)}/{len(group)}"
            for name, group in sorted(providers.items())
        },
        "overall": round(sum(o.passed for o in outcomes) / len(outcomes), 3),
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
