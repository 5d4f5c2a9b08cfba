"""Root fixtures: only what every test directory may need."""

from __future__ import annotations

import pytest

from armguard.clock import ManualClock


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()
