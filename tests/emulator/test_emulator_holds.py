"""The store's index of live operations finds exactly the blockers a scan of every live
operation finds: it only narrows where a hold check looks, never what it decides."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from armguard.arm.ids import ResourceId
from armguard.emulator.holds import blocking_operation
from armguard.emulator.model import Operation, OpKind, OpStatus
from armguard.emulator.store import Store

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
IDS = [
    SUB,
    f"{SUB}/resourceGroups/a",
    f"{SUB}/resourceGroups/b",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Network/virtualNetworks/v",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Network/virtualNetworks/v/subnets/s1",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Network/virtualNetworks/v/subnets/s2",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Network/networkSecurityGroups/n",
    f"{SUB}/resourceGroups/b/providers/Microsoft.Network/networkInterfaces/nic",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Compute/virtualMachines/vm",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.Insights/diagnosticSettings/d",
    f"{SUB}/resourceGroups/a/providers/Microsoft.Network/virtualNetworks/v/subnets/s1/providers/Microsoft.Authorization/locks/l",
    f"{SUB}/providers/Microsoft.Security/pricings/p",
]
KEYS = [ResourceId.parse(i).key for i in IDS]

ids = st.sampled_from(IDS)
operations = st.lists(
    st.tuples(
        ids,
        st.frozensets(st.sampled_from(KEYS), max_size=2),
        st.floats(min_value=0, max_value=20),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    ops=operations,
    target=ids,
    references=st.frozensets(st.sampled_from(KEYS), max_size=2),
    now=st.floats(min_value=0, max_value=20),
    serialize=st.booleans(),
)
def test_indexed_candidates_decide_like_a_full_scan(
    ops: list[tuple[str, frozenset[str], float, bool]],
    target: str,
    references: frozenset[str],
    now: float,
    serialize: bool,
) -> None:
    store = Store()
    live: list[Operation] = []
    for n, (held, refs, ends_at, settled) in enumerate(ops):
        op = Operation(
            id=f"op{n}",
            kind=OpKind.UPDATE,
            target=ResourceId.parse(held),
            method="PUT",
            namespace="Microsoft.Network",
            location="eastus",
            api_version="2024-01-01",
            started_at=float(n) / 100,
            ends_at=ends_at,
            references=refs,
        )
        store.add_operation(op)
        if settled:
            op.status = OpStatus.SUCCEEDED
            store.settled(op)
        else:
            live.append(op)
    rid = ResourceId.parse(target)
    every = [op for op in live if op.running_at(now)]
    expected = blocking_operation(every, rid, references, serialize_top_level=serialize)
    found = blocking_operation(
        store.running(now, rid, references), rid, references, serialize_top_level=serialize
    )
    assert found is expected
