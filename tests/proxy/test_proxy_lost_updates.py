"""Seed scenario: a tag normalizer's read-modify-write PUTs racing a pipeline's full-body PUT
sent without If-Match (the Python SDK's ``begin_create_or_update`` with the model it read).

Direct, the pipeline's PUT silently wipes the normalizer's tag. Through the proxy: ``warn``
lets it happen and records it; ``guard`` turns it into ARM's 412; ``merge`` keeps both
changes; a field both changed is refused with a 412 naming it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_helpers import RG, ProxyFactory, a_group_and_vnet, events, network

from armguard.proxy.guard import Mode
from armguard.testing import EmulatorHandle


def _race(url: str, pipeline_tags: dict[str, str]) -> HttpResponseError | None:
    """The pipeline reads, the normalizer reads and writes its tag, then the pipeline writes
    the body it read with its own change: the normalizer's write is a version it never read."""
    pipeline = network(url, caller="pipeline@example.com")
    normalizer = network(url, caller="normalizer@example.com")
    stale = pipeline.virtual_networks.get(RG, "vnet")
    fresh = normalizer.virtual_networks.get(RG, "vnet")
    fresh.tags = {**(fresh.tags or {}), "owner": "platform"}
    normalizer.virtual_networks.begin_create_or_update(RG, "vnet", fresh).result()
    stale.tags = {**(stale.tags or {}), **pipeline_tags}
    try:
        pipeline.virtual_networks.begin_create_or_update(RG, "vnet", stale).result()
    except HttpResponseError as err:
        return err
    return None


def _tags(arm: EmulatorHandle) -> dict[str, str]:
    return dict(network(arm.base_url).virtual_networks.get(RG, "vnet").tags or {})


def test_direct_the_normalizers_tag_is_lost(arm: EmulatorHandle) -> None:
    a_group_and_vnet(arm.base_url)
    assert _race(arm.base_url, {"env": "prod"}) is None
    assert _tags(arm) == {"env": "prod"}, "the blind PUT replaced the tags it never read"


def test_warn_passes_it_through_and_records_the_lost_update(
    arm: EmulatorHandle, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = make_proxy(Mode.WARN)
    a_group_and_vnet(proxy.base_url)
    assert _race(proxy.base_url, {"env": "prod"}) is None
    assert _tags(arm) == {"env": "prod"}
    lost = [e for e in events(tmp_path / "events-0.jsonl") if e.get("detail", {}).get("lostUpdate")]
    assert [(e["writer"], e["detail"]["lostUpdate"]) for e in lost] == [
        ("pipeline@example.com", "lost")
    ]
    metrics = proxy.proxy.metrics.lost_updates.labels("warned")._value.get()
    assert metrics == 1


def test_guard_turns_it_into_a_412_and_nothing_is_lost(
    arm: EmulatorHandle, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(Mode.GUARD)
    a_group_and_vnet(proxy.base_url)
    err = _race(proxy.base_url, {"env": "prod"})
    assert err is not None
    assert err.status_code == 412
    assert _tags(arm) == {"owner": "platform"}
    # The normalizer's own read-modify-write was not in the way: it read what it wrote over.


def test_merge_keeps_both_changes(arm: EmulatorHandle, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(Mode.MERGE)
    a_group_and_vnet(proxy.base_url)
    assert _race(proxy.base_url, {"env": "prod"}) is None
    assert _tags(arm) == {"owner": "platform", "env": "prod"}


def test_merge_refuses_a_field_both_changed_and_names_it(
    arm: EmulatorHandle, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(Mode.MERGE)
    a_group_and_vnet(proxy.base_url)
    err = _race(proxy.base_url, {"owner": "app-team"})
    assert err is not None
    assert err.status_code == 412
    assert err.error is not None
    assert err.error.code == "PreconditionFailed"
    assert "tags.owner" in err.message
    assert "normalizer@example.com" in err.message, "the refusal names the other writer"
    assert _tags(arm) == {"owner": "platform"}


@pytest.mark.parametrize("mode", [Mode.GUARD, Mode.MERGE])
def test_a_caller_that_read_the_live_version_is_never_refused(
    arm: EmulatorHandle, make_proxy: ProxyFactory, mode: Mode
) -> None:
    proxy = make_proxy(mode)
    a_group_and_vnet(proxy.base_url)
    client = network(proxy.base_url, caller="pipeline@example.com")
    for n in range(3):
        vnet = client.virtual_networks.get(RG, "vnet")
        vnet.tags = {"run": str(n)}
        client.virtual_networks.begin_create_or_update(RG, "vnet", vnet).result()
    assert _tags(arm) == {"run": "2"}


def test_what_one_caller_read_never_licenses_another(
    arm: EmulatorHandle, make_proxy: ProxyFactory
) -> None:
    """Versions are remembered per caller: a second caller that never read the resource is
    not judged by the first caller's read."""
    proxy = make_proxy(Mode.GUARD)
    a_group_and_vnet(proxy.base_url)
    reader = network(proxy.base_url, caller="reader@example.com")
    writer = network(proxy.base_url, caller="other@example.com")
    read = reader.virtual_networks.get(RG, "vnet")
    network(arm.base_url, caller="outside@example.com").virtual_networks.begin_create_or_update(
        RG, "vnet", {**read.as_dict(), "tags": {"outside": "1"}}
    ).result()
    read.tags = {"reader": "1"}
    with pytest.raises(HttpResponseError) as refused:
        reader.virtual_networks.begin_create_or_update(RG, "vnet", read).result()
    assert refused.value.status_code == 412
    fresh = writer.virtual_networks.get(RG, "vnet")
    fresh.tags = {**(fresh.tags or {}), "other": "1"}
    writer.virtual_networks.begin_create_or_update(RG, "vnet", fresh).result()
    assert _tags(arm) == {"outside": "1", "other": "1"}
