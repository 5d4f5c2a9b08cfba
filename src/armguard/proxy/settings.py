"""The proxy's settings, with the defaults ``armguard proxy`` documents."""

from __future__ import annotations

from dataclasses import dataclass

from armguard.proxy.guard import Mode

__all__ = ["ProxySettings"]


@dataclass(frozen=True)
class ProxySettings:
    upstream: str
    """The ARM endpoint writes go to (the public cloud's, a sovereign cloud's, an emulator)."""
    lost_updates: Mode = Mode.WARN
    wait_max: float = 120.0
    """How long a refusal caused by another writer is waited out before the client gets
    ARM's own answer unchanged."""
    queue_max: float = 240.0
    """How long a write may wait for its turn. Under the 300 s read timeout of azure-core
    and of Terraform's go-azure-sdk, so the client always gets an answer; past it, nothing is
    sent and the client gets ARM's own 409 AnotherOperationInProgress, which its retry
    policy or its person already knows."""
    follow_max: float = 3600.0
    """How long the proxy follows an accepted operation before it gives its keys back."""
    turn_lease: float = 30.0
    """With a shared store: how long a proxy's ticket outlives its last renewal. A proxy that
    is killed holds no key longer than this."""
    retry_ratio: float = 0.2
    retry_floor: int = 20
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    upstream_verify: bool | str = True
    """TLS verification of the upstream: True, False, or a CA bundle path."""
    cloud: str = "AzureCloud"
    max_body_bytes: int = 16 * 1024 * 1024
