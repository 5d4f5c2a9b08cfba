"""Where each cloud's tokens come from, for the metadata document the proxy serves: clients
learn the proxy as their resource manager and still log in to the real Entra ID."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from armguard.arm.client import CLOUDS
from armguard.arm.metadata import metadata_document

__all__ = ["proxy_metadata"]

_LOGIN: Mapping[str, tuple[str, tuple[str, ...], str]] = {
    "AzureCloud": (
        "https://login.microsoftonline.com",
        ("https://management.core.windows.net/", "https://management.azure.com/"),
        "https://graph.windows.net/",
    ),
    "AzureChinaCloud": (
        "https://login.chinacloudapi.cn",
        ("https://management.core.chinacloudapi.cn/", "https://management.chinacloudapi.cn/"),
        "https://graph.chinacloudapi.cn/",
    ),
    "AzureUSGovernment": (
        "https://login.microsoftonline.us",
        ("https://management.core.usgovcloudapi.net/", "https://management.usgovcloudapi.net/"),
        "https://graph.windows.net/",
    ),
}


def proxy_metadata(cloud: str, public_url: str) -> dict[str, Any]:
    if cloud not in CLOUDS or cloud not in _LOGIN:
        raise ValueError(f"unknown cloud '{cloud}'; known: {', '.join(sorted(_LOGIN))}")
    login, audiences, graph = _LOGIN[cloud]
    return metadata_document(
        public_url, login_endpoint=login, audiences=audiences, name=cloud, graph=graph
    )
