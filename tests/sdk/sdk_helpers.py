"""Names shared by the SDK tests."""

from __future__ import annotations

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg1"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
WINDOW = "eventTimestamp ge '2020-01-01T00:00:00Z' and eventTimestamp le '2100-01-01T00:00:00Z'"
