"""Fault injection: rules of match × effect × schedule, seeded, with a log of every applied fault.

A rule says which requests it concerns (:class:`FaultMatch`), what happens to them
(:class:`FaultEffect`: an error status, added latency, an operation that stays running or ends
Failed) and when (:class:`FaultSchedule`: skip the first matches, only the first N, a time window,
a probability). The probability is drawn from ``random.Random(seed)`` under one lock, so the same
seed and the same request sequence apply the same faults: a flaky run can be replayed.

Schedule semantics, in the order they are checked for each request the match selects:

1. ``window_start``/``window_end``: seconds since the rule was added, on the engine's clock.
   Requests outside the window are not counted at all.
2. ``after_n``: the first ``after_n`` counted requests pass untouched.
3. ``first_n``: only the next ``first_n`` counted requests are candidates; later ones pass.
4. ``probability``: each candidate is faulted with this probability.

``stuckFor`` and ``failOperation`` act on the operation a request starts. A rule with them
that matches only reads is refused when added; a request that starts no operation (a
synchronous write, a refused one) is not a fault application at all: the core retracts it
(:meth:`FaultEngine.retract`), so it is not in the applied log and does not use up
``first_n``.

The engine is pure: it decides and records; the emulator core applies the effect.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from armguard.arm.errors import ArmError, ErrorDetail, reason_phrase
from armguard.clock import Clock, isoformat

__all__ = [
    "AppliedFault",
    "FaultEffect",
    "FaultEngine",
    "FaultMatch",
    "FaultRule",
    "FaultSchedule",
    "parse_rule",
]

_METHODS = frozenset({"GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"})
_BASIC_OPERATIONS = frozenset({"read", "write", "delete"})
_MAX_APPLIED = 10_000  # the applied log is for inspection; keep its memory bounded
# Bounds on effect durations. A latency is slept in real time, so an hour is already far
# more than any test waits; Retry-After is what clients sleep; emulated spans (stuckFor,
# windows) are on the emulator clock, which the admin API advances ten years at most at once.
MAX_LATENCY = 3600.0
MAX_RETRY_AFTER = 86_400.0
MAX_EMULATED = 10 * 365.25 * 24 * 3600


@dataclass(frozen=True)
class FaultMatch:
    """Which requests a rule concerns; ``None`` matches anything.

    ``operation`` is ``read``, ``write``, ``delete``, ``action`` (any action) or an action name
    such as ``listKeys``; an action name also matches a request whose path ends in it.
    """

    method: str | None = None
    resource_type: str | None = None
    id_pattern: str | None = None  # fnmatch glob on the resource ID, case-insensitive
    operation: str | None = None

    def matches(
        self,
        *,
        method: str,
        resource_id: str | None,
        resource_type: str | None,
        operation: str,
        path: str,
    ) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        if self.resource_type is not None and (
            resource_type is None or self.resource_type.lower() != resource_type.lower()
        ):
            return False
        if self.id_pattern is not None:
            # Requests without a resource ID (collections, providers) are matched on their path.
            target = (resource_id or path.split("?", 1)[0]).lower()
            if not fnmatch.fnmatchcase(target, self.id_pattern.lower()):
                return False
        if self.operation is not None:
            wanted = self.operation.lower()
            actual = operation.lower()
            if wanted == "action":
                return actual not in _BASIC_OPERATIONS
            if wanted == actual:
                return True
            if wanted in _BASIC_OPERATIONS:
                return False
            last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
            return last == wanted
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "resourceType": self.resource_type,
            "idPattern": self.id_pattern,
            "operation": self.operation,
        }


@dataclass(frozen=True)
class FaultEffect:
    status: int | None = None  # reject the request with this HTTP error status
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None  # seconds, sent as Retry-After with the status
    latency: float | None = None  # seconds added before the request is answered
    stuck_for: float | None = None  # the operation stays non-terminal this long, then fails
    fail_operation: bool = False  # the async operation ends Failed

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "retryAfter": self.retry_after,
            "latency": self.latency,
            "stuckFor": self.stuck_for,
            "failOperation": self.fail_operation,
        }


@dataclass(frozen=True)
class FaultSchedule:
    probability: float = 1.0
    first_n: int | None = None
    after_n: int = 0
    window_start: float | None = None  # seconds after the rule was added
    window_end: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "firstN": self.first_n,
            "afterN": self.after_n,
            "windowStart": self.window_start,
            "windowEnd": self.window_end,
        }


@dataclass(frozen=True)
class FaultRule:
    id: str
    match: FaultMatch = field(default_factory=FaultMatch)
    effect: FaultEffect = field(default_factory=FaultEffect)
    schedule: FaultSchedule = field(default_factory=FaultSchedule)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "match": self.match.to_json(),
            "effect": self.effect.to_json(),
            "schedule": self.schedule.to_json(),
            "description": self.description,
        }


@dataclass(frozen=True)
class AppliedFault:
    rule_id: str
    at: str  # ISO time on the engine clock
    method: str
    resource_id: str | None
    operation: str
    effect: FaultEffect

    def http_error(self) -> ArmError | None:
        """The synchronous rejection this fault calls for, if any, with its Retry-After."""
        status = self.effect.status
        if status is None:
            return None
        headers: dict[str, str] = {}
        if self.effect.retry_after is not None:
            headers["Retry-After"] = format(self.effect.retry_after, "g")
        return ArmError(
            status,
            self.effect.code or reason_phrase(status),
            self.effect.message or f"The request failed: fault rule '{self.rule_id}' was applied.",
            headers=headers,
        )

    def operation_error(self) -> ErrorDetail | None:
        """The error a long-running operation ends with under this fault, if it ends Failed."""
        if self.effect.fail_operation:
            return ErrorDetail(
                self.effect.code or "ResourceOperationFailure",
                self.effect.message
                or "The resource operation completed with terminal provisioning state 'Failed'.",
            )
        if self.effect.stuck_for is not None:
            return ErrorDetail(
                self.effect.code or "OperationTimedOut",
                self.effect.message
                or "The operation timed out and did not reach a terminal state.",
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "ruleId": self.rule_id,
            "at": self.at,
            "method": self.method,
            "resourceId": self.resource_id,
            "operation": self.operation,
            "effect": self.effect.to_json(),
        }


# -- validation of the JSON/YAML form -------------------------------------------------------

_SECTIONS: dict[str, dict[str, str]] = {
    # section → accepted key (snake_case or camelCase) → field name
    "match": {
        "method": "method",
        "resource_type": "resource_type",
        "resourceType": "resource_type",
        "id_pattern": "id_pattern",
        "idPattern": "id_pattern",
        "operation": "operation",
    },
    "effect": {
        "status": "status",
        "code": "code",
        "message": "message",
        "retry_after": "retry_after",
        "retryAfter": "retry_after",
        "latency": "latency",
        "stuck_for": "stuck_for",
        "stuckFor": "stuck_for",
        "fail_operation": "fail_operation",
        "failOperation": "fail_operation",
    },
    "schedule": {
        "probability": "probability",
        "first_n": "first_n",
        "firstN": "first_n",
        "after_n": "after_n",
        "afterN": "after_n",
        "window_start": "window_start",
        "windowStart": "window_start",
        "window_end": "window_end",
        "windowEnd": "window_end",
    },
}
_RULE_KEYS = frozenset({"id", "match", "effect", "schedule", "description"})


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = data.get(name, {})
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"'{name}' must be an object")
    aliases = _SECTIONS[name]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        target = aliases.get(key)
        if target is None:
            known = ", ".join(k for k in aliases if "_" not in k)
            raise ValueError(f"'{name}.{key}' is not a known field; expected one of: {known}")
        if target in out:
            raise ValueError(f"'{name}.{key}' is given twice (snake_case and camelCase)")
        out[target] = value
    return out


def _text(path: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{path}' must be a non-empty string")
    return value.strip()


def _number(path: str, value: Any, *, high: float, low: float = 0.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{path}' must be a number")
    if not math.isfinite(value) or value < low or value > high:
        raise ValueError(f"'{path}' must be from {low:g} to {high:g}, not {value}")
    return float(value)


def _count(path: str, value: Any, *, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"'{path}' must be an integer of at least {low}")
    return value


def _build_match(raw: dict[str, Any]) -> FaultMatch:
    method = _text("match.method", raw.get("method"))
    if method is not None:
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(
                f"'match.method' must be one of {', '.join(sorted(_METHODS))}, not '{method}'"
            )
    resource_type = _text("match.resourceType", raw.get("resource_type"))
    if resource_type is not None and resource_type.count("/") < 1:
        raise ValueError(
            "'match.resourceType' must be a full type such as "
            f"'Microsoft.Network/virtualNetworks', not '{resource_type}'"
        )
    return FaultMatch(
        method=method,
        resource_type=resource_type,
        id_pattern=_text("match.idPattern", raw.get("id_pattern")),
        operation=_text("match.operation", raw.get("operation")),
    )


def _build_effect(raw: dict[str, Any]) -> FaultEffect:
    status = _count("effect.status", raw.get("status"), low=0)
    if status is not None and not 400 <= status <= 599:
        raise ValueError(
            f"'effect.status' must be an HTTP error status from 400 to 599, not {status}"
        )
    fail = raw.get("fail_operation", False)
    if not isinstance(fail, bool):
        raise ValueError("'effect.failOperation' must be true or false")
    effect = FaultEffect(
        status=status,
        code=_text("effect.code", raw.get("code")),
        message=_text("effect.message", raw.get("message")),
        retry_after=_number("effect.retryAfter", raw.get("retry_after"), high=MAX_RETRY_AFTER),
        latency=_number("effect.latency", raw.get("latency"), high=MAX_LATENCY),
        stuck_for=_number("effect.stuckFor", raw.get("stuck_for"), high=MAX_EMULATED),
        fail_operation=fail,
    )
    _check_effect(effect)
    return effect


def _check_effect(effect: FaultEffect) -> None:
    acts = (
        effect.status is not None
        or effect.latency is not None
        or effect.stuck_for is not None
        or effect.fail_operation
    )
    if not acts:
        raise ValueError(
            "'effect' must set at least one of status, latency, stuckFor or failOperation"
        )
    if effect.status is not None and (effect.stuck_for is not None or effect.fail_operation):
        raise ValueError(
            "'effect.status' rejects the request, so no operation starts: it cannot be combined "
            "with 'effect.stuckFor' or 'effect.failOperation'"
        )
    if effect.retry_after is not None and effect.status is None:
        raise ValueError("'effect.retryAfter' is sent with an error: it needs 'effect.status'")
    if (effect.code is not None or effect.message is not None) and not (
        effect.status is not None or effect.stuck_for is not None or effect.fail_operation
    ):
        raise ValueError(
            "'effect.code' and 'effect.message' describe an error: they need 'effect.status', "
            "'effect.stuckFor' or 'effect.failOperation'"
        )


def _check_rule(match: FaultMatch, effect: FaultEffect) -> None:
    """Refuse a rule whose operation effect can never take place: reads start no operation."""
    acts_on_operation = effect.stuck_for is not None or effect.fail_operation
    reads_only = match.method in ("GET", "HEAD") or (match.operation or "").lower() == "read"
    if acts_on_operation and reads_only:
        raise ValueError(
            "'effect.stuckFor' and 'effect.failOperation' act on the operation a write "
            "starts, and this rule matches only reads, which start none"
        )


def _build_schedule(raw: dict[str, Any]) -> FaultSchedule:
    probability = _number("schedule.probability", raw.get("probability"), high=1.0)
    start = _number("schedule.windowStart", raw.get("window_start"), high=MAX_EMULATED)
    end = _number("schedule.windowEnd", raw.get("window_end"), high=MAX_EMULATED)
    if start is not None and end is not None and end <= start:
        raise ValueError("'schedule.windowEnd' must be later than 'schedule.windowStart'")
    return FaultSchedule(
        probability=1.0 if probability is None else probability,
        first_n=_count("schedule.firstN", raw.get("first_n"), low=1),
        after_n=_count("schedule.afterN", raw.get("after_n"), low=0) or 0,
        window_start=start,
        window_end=end,
    )


def _normalized(rule: FaultRule) -> FaultRule:
    """A rule given as objects, validated and normalised exactly as its JSON form would be."""
    match = _build_match(
        {
            "method": rule.match.method,
            "resource_type": rule.match.resource_type,
            "id_pattern": rule.match.id_pattern,
            "operation": rule.match.operation,
        }
    )
    effect = _build_effect({k: v for k, v in _effect_fields(rule.effect).items() if v is not None})
    schedule = _build_schedule(
        {
            "probability": rule.schedule.probability,
            "first_n": rule.schedule.first_n,
            "after_n": rule.schedule.after_n,
            "window_start": rule.schedule.window_start,
            "window_end": rule.schedule.window_end,
        }
    )
    if not isinstance(rule.description, str):
        raise ValueError("'description' must be a string")
    _check_rule(match, effect)
    return replace(rule, match=match, effect=effect, schedule=schedule)


def _effect_fields(effect: FaultEffect) -> dict[str, Any]:
    return {
        "status": effect.status,
        "code": effect.code,
        "message": effect.message,
        "retry_after": effect.retry_after,
        "latency": effect.latency,
        "stuck_for": effect.stuck_for,
        "fail_operation": effect.fail_operation,
    }


def parse_rule(data: Mapping[str, Any], default_id: str) -> FaultRule:
    """A rule from its JSON form; ValueError names the offending field."""
    if not isinstance(data, Mapping):
        raise ValueError("a fault rule must be an object")
    unknown = [k for k in data if k not in _RULE_KEYS]
    if unknown:
        raise ValueError(
            f"'{unknown[0]}' is not a fault rule field; expected id, match, effect, schedule, "
            "description"
        )
    if "effect" not in data:
        raise ValueError("'effect' is required")
    rule_id = _text("id", data.get("id")) or default_id
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError("'description' must be a string")
    match = _build_match(_section(data, "match"))
    effect = _build_effect(_section(data, "effect"))
    _check_rule(match, effect)
    return FaultRule(
        id=rule_id,
        match=match,
        effect=effect,
        schedule=_build_schedule(_section(data, "schedule")),
        description=description,
    )


# -- the engine -----------------------------------------------------------------------------


@dataclass
class _RuleState:
    rule: FaultRule
    added_at: float  # engine clock, monotonic
    counted: int = 0
    fired: int = 0


class FaultEngine:
    """Rules in the order they were added; the first rule that matches and fires wins."""

    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self._clock = clock
        self._seed = seed
        self._rng = random.Random(seed)
        self._rules: list[_RuleState] = []
        self._applied: deque[AppliedFault] = deque(maxlen=_MAX_APPLIED)
        self._lock = threading.Lock()
        self._next_id = 1

    def add_rule(self, data: Mapping[str, Any] | FaultRule) -> FaultRule:
        """Validate and add a rule. ValueError names the field that is wrong."""
        with self._lock:
            rule = self._prepare(data, taken={s.rule.id for s in self._rules})
            self._rules.append(_RuleState(rule, self._clock.monotonic()))
            return rule

    def _prepare(self, data: Mapping[str, Any] | FaultRule, taken: set[str]) -> FaultRule:
        rule = _normalized(data) if isinstance(data, FaultRule) else parse_rule(data, "")
        if not rule.id:
            while f"fault-{self._next_id}" in taken:
                self._next_id += 1
            rule = replace(rule, id=f"fault-{self._next_id}")
            self._next_id += 1
        if rule.id in taken:
            raise ValueError(f"a fault rule with id '{rule.id}' already exists")
        taken.add(rule.id)
        return rule

    def remove_rule(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [s for s in self._rules if s.rule.id != rule_id]
            return len(self._rules) != before

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [s.rule for s in self._rules]

    def has_rules(self) -> bool:
        """Whether any rule is installed: a lock-free check, so requests skip matching (and
        the route work it needs) when fault injection is not in use. A rule added while a
        request is in flight may or may not see that request, as with the lock."""
        return bool(self._rules)

    def match(
        self,
        *,
        method: str,
        resource_id: str | None,
        resource_type: str | None,
        operation: str,
        path: str,
    ) -> AppliedFault | None:
        """The fault to apply to this request, if any; an applied fault is recorded."""
        with self._lock:
            if not self._rules:
                return None
            now = self._clock.monotonic()
            for state in self._rules:
                rule = state.rule
                if not rule.match.matches(
                    method=method,
                    resource_id=resource_id,
                    resource_type=resource_type,
                    operation=operation,
                    path=path,
                ):
                    continue
                if not self._fires(state, now):
                    continue
                state.fired += 1
                applied = AppliedFault(
                    rule_id=rule.id,
                    at=isoformat(self._clock.now()),
                    method=method.upper(),
                    resource_id=resource_id,
                    operation=operation,
                    effect=rule.effect,
                )
                self._applied.append(applied)
                return applied
            return None

    def _fires(self, state: _RuleState, now: float) -> bool:
        schedule = state.rule.schedule
        elapsed = now - state.added_at
        if schedule.window_start is not None and elapsed < schedule.window_start:
            return False
        if schedule.window_end is not None and elapsed >= schedule.window_end:
            return False
        state.counted += 1
        position = state.counted - schedule.after_n  # 1-based among the candidates
        if position < 1:
            return False
        if schedule.first_n is not None and position > schedule.first_n:
            return False
        if schedule.probability >= 1.0:
            return True
        # Drawn only for probabilistic candidates, so certain rules do not shift the sequence.
        return self._rng.random() < schedule.probability

    def retract(self, applied: AppliedFault) -> None:
        """``applied`` acted on an operation (stuckFor, failOperation), but its request started
        none (a synchronous write, a refused one): the fault did not happen. It leaves the
        applied log and gives back its place in ``firstN``; only a latency it also added,
        which did happen, stays recorded."""
        with self._lock:
            index = next(
                (i for i in range(len(self._applied) - 1, -1, -1) if self._applied[i] is applied),
                None,
            )
            if index is None:
                return
            if applied.effect.latency:
                self._applied[index] = replace(
                    applied, effect=FaultEffect(latency=applied.effect.latency)
                )
                return
            del self._applied[index]
            for state in self._rules:
                if state.rule.id == applied.rule_id:
                    state.counted -= 1
                    state.fired -= 1

    def applied(self) -> list[AppliedFault]:
        with self._lock:
            return list(self._applied)

    def reset(self) -> None:
        """Remove every rule and the applied log, and restart the random sequence."""
        with self._lock:
            self._rules.clear()
            self._applied.clear()
            self._rng = random.Random(self._seed)
            self._next_id = 1

    def seed(self, n: int) -> None:
        """Restart the random sequence from ``n``; later resets restart from ``n`` too."""
        with self._lock:
            self._seed = n
            self._rng = random.Random(n)

    def load_config(self, source: str | Path | Mapping[str, Any]) -> list[FaultRule]:
        """Add the rules of ``{"faults": [...]}`` from a YAML/JSON file or a mapping.

        All rules are validated before any is added; ValueError names the file, the rule's
        position and the field.
        """
        where = "fault config"
        if isinstance(source, str | Path):
            where = f"fault config '{source}'"
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{where} cannot be read: {exc.strerror or exc}") from None
            try:
                data: Any = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{where} is not valid YAML or JSON: {exc}") from None
        else:
            data = source
        if not isinstance(data, Mapping) or not isinstance(data.get("faults"), list):
            raise ValueError(f"{where} must be an object with a 'faults' list")
        with self._lock:
            taken = {s.rule.id for s in self._rules}
            next_id = self._next_id
            prepared: list[FaultRule] = []
            try:
                for n, item in enumerate(data["faults"]):
                    try:
                        prepared.append(self._prepare(item, taken))
                    except ValueError as exc:
                        raise ValueError(f"{where}: faults[{n}]: {exc}") from None
            except ValueError:
                self._next_id = next_id
                raise
            now = self._clock.monotonic()
            self._rules.extend(_RuleState(rule, now) for rule in prepared)
            return prepared

    def to_json(self) -> dict[str, Any]:
        """Rules with their counters, and the applied log, for the admin API."""
        with self._lock:
            return {
                "seed": self._seed,
                "rules": [
                    {**s.rule.to_json(), "matched": s.counted, "fired": s.fired}
                    for s in self._rules
                ],
                "applied": [a.to_json() for a in self._applied],
            }
