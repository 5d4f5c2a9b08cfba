"""SDK waits on the emulator's ManualClock: the official clients' own RetryPolicy and LRO
pollers spend emulated time, not real time, through the ClockTransport that ``arm.client``
installs. Wall-time bounds are generous (the machine running these may be loaded); each one
stands for a run that would take minutes to hours of real sleeping."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import HardwareProfile, VirtualMachine
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import AddressSpace, Subnet, VirtualNetwork
from azure.mgmt.resource.resources import ResourceManagementClient
from sdk_helpers import RG

from armguard.clock import ManualClock, SystemClock
from armguard.testing import AllowHttp, ClockTransport, EmulatorHandle, emulator, throttle

VM_TYPE = "Microsoft.Compute/virtualMachines"
WALL_LIMIT = 5.0


def vm_lasting(create_seconds: float) -> dict[str, Any]:
    return {VM_TYPE: {"durations": {"create": create_seconds}}}


def a_vm() -> VirtualMachine:
    return VirtualMachine(
        location="eastus", hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5")
    )


def a_vnet() -> VirtualNetwork:
    return VirtualNetwork(
        location="eastus",
        address_space=AddressSpace(address_prefixes=["10.0.0.0/16"]),
        subnets=[Subnet(name="a", address_prefix="10.0.0.0/24")],
    )


def with_group(arm: EmulatorHandle) -> None:
    arm.client(ResourceManagementClient).resource_groups.create_or_update(
        RG, {"location": "eastus"}
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timed() -> Iterator[list[float]]:
    """Wall seconds the test body took, checked against WALL_LIMIT on the way out."""
    spent: list[float] = []
    start = time.monotonic()
    yield spent
    spent.append(time.monotonic() - start)
    assert spent[-1] < WALL_LIMIT


def test_throttle_retry_after_30_is_waited_on_the_manual_clock(
    clock: ManualClock, timed: list[float]
) -> None:
    with emulator(clock=clock, time_scale=0) as arm:
        with_group(arm)
        network = arm.client(NetworkManagementClient)
        assert isinstance(network._client._pipeline._transport, ClockTransport)
        arm.inject(
            throttle(
                retry_after=30,
                method="PUT",
                resource_type="Microsoft.Network/virtualNetworks",
                first_n=2,
            )
        )
        before = clock.monotonic()
        vnet = network.virtual_networks.begin_create_or_update(RG, "vnet1", a_vnet()).result(
            timeout=30
        )
        assert isinstance(vnet, VirtualNetwork)
        assert vnet.provisioning_state == "Succeeded"
        assert [s.name for s in vnet.subnets or []] == ["a"]
        # The SDK's RetryPolicy honoured both Retry-After: 30s, on the emulator's clock.
        assert arm.waits is not None
        assert arm.waits.waits[:2] == [30.0, 30.0]
        assert clock.monotonic() - before >= 60
        assert len(arm.core.faults.applied()) == 2


def test_retry_budget_runs_out_in_emulated_time(clock: ManualClock, timed: list[float]) -> None:
    with emulator(clock=clock, time_scale=0) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        arm.inject(throttle(retry_after=30, method="PUT", resource_type=VM_TYPE))
        before = clock.monotonic()
        with pytest.raises(HttpResponseError) as info:
            compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm())
        assert info.value.status_code == 429
        # retry_status=3 by default: four attempts, three waits of 30 s between them.
        assert arm.waits is not None
        assert arm.waits.waits == [30.0, 30.0, 30.0]
        assert clock.monotonic() - before == 90
        assert len(arm.core.faults.applied()) == 4


def test_thirty_minute_create_returns_without_anyone_advancing(
    clock: ManualClock, timed: list[float]
) -> None:
    with emulator(clock=clock, type_settings=vm_lasting(1800), retry_after_max=600) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        before = clock.monotonic()
        vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm()).result(timeout=30)
        assert isinstance(vm, VirtualMachine)
        assert vm.provisioning_state == "Succeeded"
        # The poller slept each Retry-After the emulator sent (time left, capped at 600).
        assert arm.waits is not None
        assert arm.waits.waits == [600.0, 600.0, 600.0]
        assert clock.monotonic() - before == 1800


def test_auto_advance_polls_a_ten_minute_create_every_ten_seconds(
    clock: ManualClock, timed: list[float]
) -> None:
    with emulator(clock=clock, type_settings=vm_lasting(600), auto_advance=True) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        before = clock.monotonic()
        vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm()).result(timeout=30)
        assert vm.provisioning_state == "Succeeded"
        assert arm.waits is not None
        assert arm.waits.waits == [10.0] * 60
        assert clock.monotonic() - before == 600


@pytest.mark.parametrize("auto_advance", [False, True])
def test_concurrent_operations_share_one_timeline(
    clock: ManualClock, timed: list[float], auto_advance: bool
) -> None:
    """Two 20-minute creates polled at once end after 20 emulated minutes, not 40: waits park
    on the clock and overlap instead of each pushing it forward."""
    with emulator(
        clock=clock,
        type_settings=vm_lasting(1200),
        retry_after_max=600,
        auto_advance=auto_advance,
    ) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        before = clock.monotonic()
        first = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm())
        second = compute.virtual_machines.begin_create_or_update(RG, "vm2", a_vm())
        assert first.result(timeout=30).provisioning_state == "Succeeded"
        assert second.result(timeout=30).provisioning_state == "Succeeded"
        assert clock.monotonic() - before == 1200


def test_driven_clock_holds_an_operation_until_the_test_advances(
    clock: ManualClock, timed: list[float]
) -> None:
    with emulator(clock=clock, type_settings=vm_lasting(45)) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        before = clock.monotonic()
        poller = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm())
        assert compute.virtual_machines.get(RG, "vm1").provisioning_state == "Creating"
        assert clock.monotonic() == before
        arm.advance(45)
        assert poller.result(timeout=30).provisioning_state == "Succeeded"
        assert clock.monotonic() - before == 45


class AdvanceOnFirstPoll(SansIOHTTPPolicy[Any, Any]):
    """Advances the clock the moment the poller's first status answer arrives: the test's own
    ``advance`` landing between that answer and the poller's wait, which a loaded machine does."""

    def __init__(self, arm: EmulatorHandle, seconds: float) -> None:
        self.arm, self.seconds, self.done = arm, seconds, False

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        if not self.done and request.http_request.method == "GET":
            self.done = True
            self.arm.advance(self.seconds)


def test_an_advance_between_a_poll_and_its_wait_does_not_lengthen_the_wait(
    clock: ManualClock,
) -> None:
    """The wait runs from the answer it follows, as it would in real time: the operation is seen
    done when the test's 45 s are up, not one Retry-After (10 s) later."""
    with emulator(clock=clock, type_settings=vm_lasting(45)) as arm:
        with_group(arm)
        compute = arm.client(
            ComputeManagementClient, per_call_policies=[AllowHttp(), AdvanceOnFirstPoll(arm, 45)]
        )
        before = clock.monotonic()
        vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm()).result(timeout=30)
        assert vm.provisioning_state == "Succeeded"
        assert arm.waits is not None
        assert arm.waits.waits == [10.0]
        assert clock.monotonic() - before == 45


def test_an_advance_while_a_poll_is_in_flight_does_not_lengthen_the_wait(
    clock: ManualClock,
) -> None:
    """The poll is answered "InProgress" at the emulator, and the test's advance lands before
    that answer is back in the SDK (requests' response hook runs inside the transport's send):
    the wait still runs from the poll, so the operation is seen done at 45 s, not 55."""
    with emulator(clock=clock, type_settings=vm_lasting(45)) as arm:
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        transport = compute._client._pipeline._transport
        transport.open()
        polls: list[str] = []

        def advance_on_first_poll(response: Any, *args: Any, **kwargs: Any) -> None:
            if response.request.method == "GET" and not polls:
                polls.append(response.request.url)
                arm.advance(45)

        transport.session.hooks["response"].append(advance_on_first_poll)
        before = clock.monotonic()
        vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm()).result(timeout=30)
        assert vm.provisioning_state == "Succeeded"
        assert polls, "the first poll was not seen"
        assert clock.monotonic() - before == 45


def hold_the_interpreter(seconds: float) -> None:
    """Pause every thread of this process, as a full garbage collection does: spin with the
    GIL for ``seconds``, then let the others run once before this thread goes on."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60)
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        time.sleep(0)  # the poller thread takes the GIL first, as the scheduler may let it
    finally:
        sys.setswitchinterval(interval)


def test_a_paused_process_is_not_a_quiet_test(clock: ManualClock) -> None:
    """The flake this guards against: a pause between the test's calls looked like the SDK
    idling, and the poll wait moved the clock 10 s before the test's own advance."""
    with emulator(clock=clock, type_settings=vm_lasting(45)) as arm:
        assert arm.waits is not None
        with_group(arm)
        compute = arm.client(ComputeManagementClient)
        before = clock.monotonic()
        poller = compute.virtual_machines.begin_create_or_update(RG, "vm1", a_vm())
        while not arm.waits.waits:  # the poller thread has parked its first wait
            time.sleep(0.001)
        hold_the_interpreter(0.3)
        assert clock.monotonic() == before
        arm.advance(45)
        assert poller.result(timeout=30).provisioning_state == "Succeeded"
        assert clock.monotonic() - before == 45


def test_a_transport_passed_in_wins() -> None:
    with emulator(clock=ManualClock(), time_scale=0) as arm:
        own = RequestsTransport()
        network = arm.client(NetworkManagementClient, transport=own)
        assert network._client._pipeline._transport is own


def test_real_clock_keeps_real_waits_and_refuses_auto_advance() -> None:
    with emulator(clock=SystemClock(), time_scale=0) as arm:
        assert arm.waits is None
        network = arm.client(NetworkManagementClient)
        assert not isinstance(network._client._pipeline._transport, ClockTransport)
    with (
        pytest.raises(ValueError, match="ManualClock"),
        emulator(clock=SystemClock(), auto_advance=True),
    ):
        pass
