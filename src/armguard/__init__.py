"""armguard: conflict-safe concurrent writes to Azure Resource Manager, proven locally.

The public Python API (``docs/python.md``)::

    from armguard import Coordinator, TagsIntent
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Loaded on first use: ``import armguard.arm…`` (the emulator, ``armguard explain``) should not
# pay for the coordinator and its worker.
_EXPORTS = {
    "Coordinator": "armguard.client",
    "Submission": "armguard.client",
    "ActionIntent": "armguard.coordinator.intents",
    "DeleteIntent": "armguard.coordinator.intents",
    "Intent": "armguard.coordinator.intents",
    "IntentError": "armguard.coordinator.intents",
    "MergeIntent": "armguard.coordinator.intents",
    "PutIntent": "armguard.coordinator.intents",
    "ResizeIntent": "armguard.coordinator.intents",
    "TagsIntent": "armguard.coordinator.intents",
    "Job": "armguard.coordinator.model",
    "JobState": "armguard.coordinator.model",
    "Outcome": "armguard.coordinator.model",
    "StalePolicy": "armguard.coordinator.model",
    "JobEvent": "armguard.events",
    "Worker": "armguard.coordinator.worker",
    "WorkerSettings": "armguard.coordinator.worker",
    "WorkerStats": "armguard.coordinator.worker",
    "JobNotFound": "armguard.coordinator.waiting",
    "WaitTimeout": "armguard.coordinator.waiting",
    "InvalidResourceId": "armguard.arm.ids",
    "ApiVersionRequired": "armguard.coordinator.resource_types",
    "StoreError": "armguard.coordinator.sql_store",
}

__all__ = [
    "ActionIntent",
    "ApiVersionRequired",
    "Coordinator",
    "DeleteIntent",
    "Intent",
    "IntentError",
    "InvalidResourceId",
    "Job",
    "JobEvent",
    "JobNotFound",
    "JobState",
    "MergeIntent",
    "Outcome",
    "PutIntent",
    "ResizeIntent",
    "StalePolicy",
    "StoreError",
    "Submission",
    "TagsIntent",
    "WaitTimeout",
    "Worker",
    "WorkerSettings",
    "WorkerStats",
    "__version__",
]

if TYPE_CHECKING:
    from armguard.arm.ids import InvalidResourceId
    from armguard.client import Coordinator, Submission
    from armguard.coordinator.intents import (
        ActionIntent,
        DeleteIntent,
        Intent,
        IntentError,
        MergeIntent,
        PutIntent,
        ResizeIntent,
        TagsIntent,
    )
    from armguard.coordinator.model import Job, JobState, Outcome, StalePolicy
    from armguard.coordinator.resource_types import ApiVersionRequired
    from armguard.coordinator.sql_store import StoreError
    from armguard.coordinator.waiting import JobNotFound, WaitTimeout
    from armguard.coordinator.worker import Worker, WorkerSettings, WorkerStats
    from armguard.events import JobEvent


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'armguard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
