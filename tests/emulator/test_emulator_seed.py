"""``armguard emulator`` without ``--seed`` starts from a random seed: a restarted emulator
must not hand its clients the last run's request ids, operation ids and ETags. ``--seed``
replays them."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_emulator_cli import AUTH, start

RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
VNET = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
    "Microsoft.Network/virtualNetworks/vnet1"
)


def _first_write(*args: str) -> tuple[str, str, str]:
    """(request id, async operation path, ETag) of the same VNet PUT on a fresh emulator."""
    proc, url = start("--time-scale", "0", *args)
    try:
        with httpx.Client(base_url=url, headers=AUTH, params={"api-version": "2024-05-01"}) as c:
            rg = c.put(RG, params={"api-version": "2024-03-01"}, json={"location": "eastus"})
            assert rg.is_success, rg.text
            response = c.put(
                VNET,
                json={
                    "location": "eastus",
                    "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
                },
            )
            assert response.status_code == 201, response.text
            return (
                response.headers["x-ms-request-id"],
                urlsplit(response.headers["azure-asyncoperation"]).path,
                response.json()["etag"],
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_restarts_without_a_seed_hand_out_new_ids_and_a_seed_replays_them() -> None:
    first, second = _first_write(), _first_write()
    assert all(a != b for a, b in zip(first, second, strict=True)), (first, second)
    assert _first_write("--seed", "5") == _first_write("--seed", "5")
