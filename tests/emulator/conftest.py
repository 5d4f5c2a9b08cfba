from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from armguard.clock import ManualClock
from armguard.testing import EmulatorHandle, emulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm_helpers import RG, Arm


@pytest.fixture
def served(manual_clock: ManualClock) -> Iterator[EmulatorHandle]:
    with emulator(clock=manual_clock, time_scale=1.0, seed=1) as handle:
        yield handle


@pytest.fixture
def arm(served: EmulatorHandle) -> Iterator[Arm]:
    client = Arm(served.base_url)
    yield client
    client.close()


@pytest.fixture
def group(arm: Arm) -> str:
    response = arm.put(RG, {"location": "eastus"})
    assert response.status_code == 201, response.text
    return RG
