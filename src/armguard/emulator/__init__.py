"""A local Azure Resource Manager control plane with ARM's concurrency semantics.

:class:`Emulator` is the core (no HTTP); :func:`create_app` adapts it to ASGI and
:func:`serve` runs it on a loopback port. Most users want :func:`armguard.testing.emulator`
or ``armguard emulator`` on the command line.
"""

from __future__ import annotations

from armguard.emulator.app import create_app
from armguard.emulator.core import Emulator
from armguard.emulator.request import ArmRequest, ArmResponse, Call
from armguard.emulator.server import RunningServer, serve

__all__ = ["ArmRequest", "ArmResponse", "Call", "Emulator", "RunningServer", "create_app", "serve"]
