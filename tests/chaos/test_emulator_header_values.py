"""Found by benchmarks/fuzz_emulator.py: a body whose ``location`` holds what no HTTP header
may carry (a lone surrogate, a control character) ended in a 500, because the operation URL
built from it went into a response header. The header is now percent-encoded: the write is
answered, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from armguard.clock import ManualClock
from armguard.testing import DEFAULT_SUBSCRIPTION, emulator, make_token

RG = f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/acct1"


@pytest.mark.parametrize("location", ["\ud7ff", "a\tb", "x\u0000y", "caf\u00e9", "a\r\nb"])
def test_a_location_no_header_can_carry_is_answered_without_a_5xx(location: str) -> None:
    with emulator(clock=ManualClock(), auto_advance=True) as arm:
        auth = {
            "Authorization": f"Bearer {make_token('fuzzer')}",
            "Content-Type": "application/json",
        }
        with httpx.Client(base_url=arm.base_url, headers=auth) as client:
            assert client.put(
                RG, params={"api-version": "2024-03-01"}, json={"location": "x"}
            ).is_success
            body = {"location": location, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
            answer = client.put(STORAGE, params={"api-version": "2023-05-01"}, json=body)
            assert answer.status_code < 500, answer.text
            for value in answer.headers.values():
                assert value.isascii()
                assert value.isprintable()
            assert client.get(RG, params={"api-version": "2024-03-01"}).status_code == 200
