"""The official Azure SDKs against a served emulator: ManualClock, Retry-After capped at 1 s.

Operations run with time scale 0 (done at the first poll) unless a test sets
``arm.core.time_scale`` to hold one in flight and advances the clock itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from armguard.clock import ManualClock
from armguard.testing import EmulatorHandle, emulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sdk_helpers import RG, SUB


@pytest.fixture
def arm() -> Iterator[EmulatorHandle]:
    with emulator(clock=ManualClock(), time_scale=0, seed=7, retry_after_max=1) as handle:
        yield handle


@pytest.fixture
def resources(arm: EmulatorHandle):  # type: ignore[no-untyped-def]
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = arm.client(ResourceManagementClient, subscription_id=SUB)
    client.resource_groups.create_or_update(RG, {"location": "eastus"})
    return client
