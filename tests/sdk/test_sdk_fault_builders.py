"""The fault builders users put in their own tests, driven through the real SDK."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resource.resources import ResourceManagementClient

from armguard.clock import ManualClock
from armguard.testing import emulator, fail_with, stuck, throttle


def test_fail_with_answers_the_sdk_with_that_arm_error() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        client = arm.client(ResourceManagementClient, retry_total=0)
        arm.inject(
            fail_with(
                403,
                "RequestDisallowedByPolicy",
                "Resource 'rg1' was disallowed by policy.",
                method="PUT",
                first_n=1,
            )
        )
        with pytest.raises(HttpResponseError) as info:
            client.resource_groups.create_or_update("rg1", {"location": "eastus"})
        assert info.value.status_code == 403
        assert info.value.error is not None
        assert info.value.error.code == "RequestDisallowedByPolicy"
        # first_n=1: the next request is served normally.
        assert client.resource_groups.create_or_update("rg1", {"location": "eastus"}).name == "rg1"
        assert [a.rule_id for a in arm.core.faults.applied()]


def test_throttle_sends_429_with_retry_after() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        client = arm.client(ResourceManagementClient, retry_total=0)
        arm.inject(throttle(retry_after=7, method="GET"))
        with pytest.raises(HttpResponseError) as info:
            client.resource_groups.get("rg1")
        assert info.value.status_code == 429
        assert info.value.response is not None
        assert info.value.response.headers["Retry-After"] == "7"


def test_stuck_operation_ends_failed_after_its_time() -> None:
    clock = ManualClock()
    with emulator(clock=clock, time_scale=1.0, retry_after_max=1) as arm:
        client = arm.client(ResourceManagementClient, retry_total=0)
        client.resource_groups.create_or_update("rg1", {"location": "eastus"})
        arm.inject(stuck(30, method="DELETE", first_n=1))
        poller = client.resource_groups.begin_delete("rg1")
        assert client.resource_groups.check_existence("rg1")
        clock.advance(31)
        with pytest.raises(HttpResponseError):
            poller.result(timeout=30)
