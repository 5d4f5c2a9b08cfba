"""Provisioning, operation and power states, and which of them are terminal."""

from __future__ import annotations

__all__ = [
    "TERMINAL",
    "is_terminal",
    "power_state",
]

# ARM's terminal values, one "l" in Canceled. Anything else (Accepted, Creating, Updating,
# Deleting, Running, InProgress, RP-specific values) is still running; absence means Succeeded.
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def is_terminal(state: str | None) -> bool:
    return state is None or state.lower() in TERMINAL


def power_state(instance_view: dict[str, object] | None) -> str | None:
    """``running`` from an instance view's ``PowerState/running`` status, or None."""
    if not instance_view:
        return None
    statuses = instance_view.get("statuses")
    if not isinstance(statuses, list):
        return None
    for status in statuses:
        if isinstance(status, dict):
            code = str(status.get("code", ""))
            if code.lower().startswith("powerstate/"):
                return code.split("/", 1)[1].lower()
    return None
