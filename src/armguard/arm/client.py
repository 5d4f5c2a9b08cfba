"""ARM access over an azure-core pipeline, for real Azure or the emulator.

armguard owns conflict and throttling retries (classified, jittered, budgeted), so the pipeline
has **no RetryPolicy**: azure-core's default would silently resend 429s and any response with a
``Retry-After`` (409s included), doubling our retries and hiding conflicts from the classifier.

Authentication uses azure-mgmt-core's ``ARMChallengeAuthenticationPolicy`` with any azure-core
``TokenCredential`` (``azure.identity.DefaultAzureCredential`` for real ARM). For a plain-http
emulator the https check is switched off per request, which is the SDK's own switch.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import (
    HeadersPolicy,
    RequestIdPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from armguard import __version__
from armguard.arm.classify import Classification, ConflictKind, classify_error
from armguard.arm.errors import ErrorDetail, parse_error_body
from armguard.arm.urls import redact_url, same_origin

__all__ = [
    "CLOUDS",
    "ArmClient",
    "ArmResponse",
    "ArmTransportError",
    "StaticIdentityCredential",
]

# Management endpoints and token scopes of the public and sovereign clouds.
CLOUDS: Mapping[str, tuple[str, str]] = {
    "AzureCloud": ("https://management.azure.com", "https://management.azure.com/.default"),
    "AzureChinaCloud": (
        "https://management.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
    ),
    "AzureUSGovernment": (
        "https://management.usgovcloudapi.net",
        "https://management.usgovcloudapi.net/.default",
    ),
}


class ArmTransportError(Exception):
    """No HTTP answer at all (connection refused, reset, timeout). Classified as transient."""

    def classification(self) -> Classification:
        return Classification(
            kind=ConflictKind.TRANSIENT,
            reason=f"No response from ARM: {self}",
            message=str(self),
        )


@dataclass(frozen=True)
class ArmResponse:
    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: Any
    text: str = field(repr=False, default="")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def etag(self) -> str | None:
        if isinstance(self.body, Mapping) and isinstance(self.body.get("etag"), str):
            return str(self.body["etag"])
        return self.header("etag")

    def error(self) -> ErrorDetail:
        return parse_error_body(self.status, self.body if self.body is not None else self.text)

    def classification(self) -> Classification:
        return classify_error(self.status, self.error(), self.headers)

    @property
    def retry_after(self) -> float | None:
        for name, scale in (("retry-after", 1.0), ("retry-after-ms", 0.001)):
            value = self.header(name)
            if value is not None:
                try:
                    return max(0.0, float(value) * scale)
                except ValueError:
                    return None
        return None


class StaticIdentityCredential:
    """A credential for the emulator: an unsigned JWT naming the writer.

    The emulator accepts any bearer token and takes the caller for its Activity Log from the
    token's ``upn``/``appid`` claims, so each armguard writer shows up under its own name.
    Never use it against real ARM, which rejects unsigned tokens.
    """

    def __init__(self, identity: str, *, lifetime: float = 3600.0) -> None:
        self.identity = identity
        self.lifetime = lifetime

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        expires = int(time.time() + self.lifetime)
        header = {"alg": "none", "typ": "JWT"}
        claims = {
            "upn": self.identity,
            "appid": self.identity,
            "oid": self.identity,
            "aud": scopes[0] if scopes else "https://management.azure.com/",
            "exp": expires,
        }
        token = ".".join(_b64(json.dumps(p).encode()) for p in (header, claims)) + "."
        return AccessToken(token, expires)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ArmClient:
    """Send ARM requests and return every HTTP answer as an :class:`ArmResponse`.

    HTTP error statuses are data, not exceptions: the caller classifies them. Only a missing
    answer raises :class:`ArmTransportError`.
    """

    def __init__(
        self,
        credential: TokenCredential,
        *,
        endpoint: str = CLOUDS["AzureCloud"][0],
        scope: str | None = None,
        verify: bool | str = True,
        timeout: float = 60.0,
        user_agent: str | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._insecure = urlsplit(self.endpoint).scheme == "http"
        self.scope = scope or f"{self.endpoint}/.default"
        for known_endpoint, known_scope in CLOUDS.values():
            if self.endpoint == known_endpoint:
                self.scope = scope or known_scope
        self._timeout = timeout
        self._verify = verify
        policies = [
            RequestIdPolicy(),
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(user_agent or f"armguard/{__version__}"),
            ARMChallengeAuthenticationPolicy(credential, self.scope),
        ]
        self._client: PipelineClient[Any, Any] = PipelineClient(self.endpoint, policies=policies)

    def url(
        self, path: str, api_version: str | None, params: Mapping[str, str] | None = None
    ) -> str:
        """An absolute URL for an ARM path (or an absolute URL, kept with its own query)."""
        if path.startswith(("http://", "https://")):
            base = path
        else:
            base = self.endpoint + (path if path.startswith("/") else "/" + path)
        query: dict[str, str] = dict(params or {})
        if api_version is not None and "api-version=" not in base:
            query["api-version"] = api_version
        if not query:
            return base
        return base + ("&" if "?" in base else "?") + urlencode(query)

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ArmResponse:
        url = self.url(path, api_version, params)
        if not same_origin(url, self.endpoint):
            # A status URL from a response or an error message: never hand it our token.
            return ArmResponse(
                method=method,
                url=redact_url(url),
                status=400,
                headers={},
                body={
                    "error": {
                        "code": "UntrustedUrl",
                        "message": f"armguard sends credentials only to {self.endpoint}; "
                        f"it does not follow {redact_url(url)}",
                    }
                },
            )
        req_headers = dict(headers or {})
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body).encode()
            req_headers.setdefault("Content-Type", "application/json")
        request = HttpRequest(method, url, headers=req_headers, content=content)
        options: dict[str, Any] = {
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
        }
        if self._insecure:
            options["enforce_https"] = False
        if self._verify is not True:
            options["connection_verify"] = self._verify
        try:
            response = self._client.send_request(request, **options)
            raw = response.read()
        except AzureError as exc:
            raise ArmTransportError(f"{method} {url}: {exc.message}") from exc
        text = raw.decode("utf-8", "replace") if raw else ""
        parsed: Any = None
        if text.strip():
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
        return ArmResponse(
            method=method,
            url=url,
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=parsed,
            text=text,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
