"""ARM clients for writer identities: the emulator's per-writer identities on loopback, or the
one identity ``DefaultAzureCredential`` resolves against a cloud."""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from armguard.arm.client import CLOUDS, ArmClient, StaticIdentityCredential

__all__ = ["client_factory", "is_local_endpoint"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local_endpoint(endpoint: str) -> bool:
    """The emulator runs on loopback over plain http; real ARM never does."""
    parts = urlsplit(endpoint)
    return parts.scheme == "http" and (parts.hostname or "") in _LOCAL_HOSTS


def client_factory(endpoint: str | None, cloud: str) -> Callable[[str], ArmClient]:
    """One ARM client per writer identity.

    Against the emulator each writer gets a :class:`StaticIdentityCredential` naming it, so the
    Activity Log shows who wrote what. Against real ARM every writer shares the one identity
    ``DefaultAzureCredential`` resolves (environment, managed identity, az login…).
    """
    if cloud not in CLOUDS:
        raise ValueError(f"unknown cloud '{cloud}'; known: {', '.join(sorted(CLOUDS))}")
    base, scope = CLOUDS[cloud]
    url = (endpoint or base).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the endpoint must be an http(s) URL, not '{endpoint}'")
    if parts.scheme == "http" and not is_local_endpoint(url):
        raise ValueError("plain http is only allowed for a local emulator on 127.0.0.1/localhost")
    clients: dict[str, ArmClient] = {}
    lock = threading.Lock()
    if is_local_endpoint(url):

        def local(writer: str) -> ArmClient:
            with lock:
                found = clients.get(writer)
                if found is None:
                    found = clients[writer] = ArmClient(
                        StaticIdentityCredential(writer), endpoint=url, scope=scope
                    )
                return found

        return local
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415  (slow import)

    shared = ArmClient(
        DefaultAzureCredential(), endpoint=url, scope=scope if not endpoint else None
    )

    def remote(writer: str) -> ArmClient:
        return shared

    return remote
