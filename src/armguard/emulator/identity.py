"""A local Entra ID and the cloud metadata document, served next to the emulated ARM.

Clients that log in before they call ARM (``az``, Terraform, MSAL, azure-identity with an
``authority``) find everything on the emulator's own origin, with no token:

- ``GET /metadata/endpoints?api-version=…``: the cloud metadata document naming the emulator
  as the resource manager and the login endpoint (:mod:`armguard.arm.metadata`);
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 path without
  ``/v2.0``): OpenID discovery; ``GET /{tenant}/discovery/v2.0/keys``: the signing keys;
- ``GET /common/discovery/instance``: MSAL's instance discovery (for clients given its URL);
  ``GET /common/userrealm/{user}``: MSAL's user realm lookup before a password grant;
- ``POST /{tenant}/oauth2/v2.0/devicecode``: a device-code login, approved by opening
  ``/devicelogin?user_code=…&username=…``;
- ``POST /{tenant}/oauth2/v2.0/token`` (and v1 ``/oauth2/token``): ``client_credentials``
  with a secret or a certificate assertion, ``password``, ``refresh_token`` and device code. User grants
  answer ``refresh_token``, ``id_token`` and ``client_info`` as MSAL needs to keep an account.

Access tokens are RS256 JWTs whose ``appid`` (service principals) or ``upn`` (users) names
the caller in the Activity Log; the ``tid`` is the tenant in the path (a GUID), or
:data:`DEFAULT_TENANT` for ``common``/``organizations``. Credentials are not checked: like
the ARM side, which accepts any bearer token, this directory knows every client and user.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from armguard.arm.metadata import metadata_document, metadata_response
from armguard.clock import Clock, SystemClock

__all__ = [
    "DEFAULT_TENANT",
    "IdentityReply",
    "LocalDirectory",
    "is_identity_path",
]

DEFAULT_TENANT = "00000000-0000-0000-0000-000000000000"
"""The tenant of ``common``/``organizations`` logins and of the emulator's subscriptions."""
TOKEN_LIFETIME = 3599
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_USER_NAMESPACE = uuid.UUID("6f1f4a0e-51f4-4d0c-9a4b-3c1e7a0f1d2e")
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_TENANT = r"(?P<tenant>[A-Za-z0-9.\-]+)"
_OPENID_RE = re.compile(rf"^/{_TENANT}(?P<v2>/v2\.0)?/\.well-known/openid-configuration$")
_TOKEN_RE = re.compile(rf"^/{_TENANT}/oauth2(?P<v2>/v2\.0)?/token$")
_DEVICECODE_RE = re.compile(rf"^/{_TENANT}/oauth2(?P<v2>/v2\.0)?/devicecode$")
_KEYS_RE = re.compile(rf"^/{_TENANT}/discovery(?:/v2\.0)?/keys$")
_USERREALM_RE = re.compile(r"^/common/userrealm/[^/]+$")
_PATHS = (_OPENID_RE, _TOKEN_RE, _DEVICECODE_RE, _KEYS_RE, _USERREALM_RE)
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 900
_SHARED_TENANTS = frozenset({"common", "organizations"})


def is_identity_path(path: str) -> bool:
    """Whether ``path`` belongs to the directory or the metadata document, not to ARM.
    ARM paths start with ``/subscriptions``, ``/providers`` or ``/tenants``; none of these do."""
    if path in ("/metadata/endpoints", "/common/discovery/instance", "/devicelogin"):
        return True
    return any(p.match(path) for p in _PATHS)


@dataclass(frozen=True)
class IdentityReply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Grant:
    """What a refresh token was issued for."""

    client_id: str
    tenant: str
    username: str


@dataclass
class _DeviceLogin:
    """A device-code login waiting for someone to approve its user code."""

    client_id: str
    tenant: str
    user_code: str
    audience: str
    expires_at: float
    username: str | None = None


class LocalDirectory:
    """The emulator's Entra ID. ``clock`` stamps tokens (clients judge expiry by their own
    wall clock, so the server passes a :class:`~armguard.clock.SystemClock` even when ARM runs
    on a manual one); the signing key is made afresh for each directory."""

    def __init__(self, clock: Clock | None = None, *, default_tenant: str = DEFAULT_TENANT) -> None:
        self.clock: Clock = clock or SystemClock()
        self.default_tenant = default_tenant
        self.key_id = secrets.token_hex(8)
        self._signing_key: rsa.RSAPrivateKey | None = None
        self._grants: dict[str, _Grant] = {}
        self._devices: dict[str, _DeviceLogin] = {}
        self._lock = threading.Lock()

    @property
    def _key(self) -> rsa.RSAPrivateKey:
        # Made on first use: an RSA key takes tens of milliseconds, and most emulators (every
        # test's) never log anyone in.
        with self._lock:
            if self._signing_key is None:
                self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._signing_key

    # -- serving ------------------------------------------------------------------------

    def serve(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, base_url: str
    ) -> IdentityReply:
        """Answer one request for a path :func:`is_identity_path` accepts."""
        method = method.upper()
        base = base_url.rstrip("/")
        if path == "/metadata/endpoints":
            return self._only_get(method) or self._metadata(query, base)
        if path == "/common/discovery/instance":
            return self._only_get(method) or self._instance_discovery(query, base)
        if _USERREALM_RE.match(path):
            return self._only_get(method) or IdentityReply(
                200,
                {
                    "ver": "1.0",
                    "account_type": "Managed",
                    "domain_name": "emulator.local",
                    "cloud_instance_name": base.split("://", 1)[-1],
                    "cloud_audience_urn": "urn:federation:MicrosoftOnline",
                },
            )
        if m := _OPENID_RE.match(path):
            return self._only_get(method) or IdentityReply(
                200, self.openid_configuration(base, m.group("tenant"), v2=bool(m.group("v2")))
            )
        if _KEYS_RE.match(path):
            return self._only_get(method) or IdentityReply(200, {"keys": [self._jwk()]})
        if path == "/devicelogin":
            return self.approve_device(query.get("user_code", ""), query.get("username", ""))
        m = _TOKEN_RE.match(path) or _DEVICECODE_RE.match(path)
        assert m is not None, path
        if method != "POST":
            return _oauth_error(405, "invalid_request", 900561, "The endpoint only accepts POST.")
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        if path.endswith("/devicecode"):
            return self.device_code(form, base, m.group("tenant"))
        return self.token(form, base, m.group("tenant"), v2=bool(m.group("v2")))

    @staticmethod
    def _only_get(method: str) -> IdentityReply | None:
        if method in ("GET", "HEAD"):
            return None
        return _oauth_error(405, "invalid_request", 900561, "The endpoint only accepts GET.")

    def _metadata(self, query: Mapping[str, str], base: str) -> IdentityReply:
        version = query.get("api-version", "").strip()
        if not version:
            return IdentityReply(
                400,
                {
                    "error": {
                        "code": "MissingApiVersionParameter",
                        "message": "The api-version query parameter (?api-version=) is required "
                        "for all requests.",
                    }
                },
            )
        document = metadata_document(base, login_endpoint=base, audiences=[base + "/"])
        return IdentityReply(200, metadata_response(document, version))

    def _instance_discovery(self, query: Mapping[str, str], base: str) -> IdentityReply:
        endpoint = urlsplit(query.get("authorization_endpoint", ""))
        tenant = endpoint.path.strip("/").split("/", 1)[0]
        # MSAL names the authority by host alone (it drops the port), so the host decides.
        if endpoint.hostname != urlsplit(base).hostname or not tenant:
            return _oauth_error(
                400,
                "invalid_instance",
                50049,
                f"Unknown or invalid instance: '{endpoint.geturl()}' is not this directory.",
            )
        host = base.split("://", 1)[-1]
        return IdentityReply(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{base}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            },
        )

    # -- documents ----------------------------------------------------------------------

    def openid_configuration(self, base: str, tenant: str, *, v2: bool = True) -> dict[str, Any]:
        shown = "{tenantid}" if tenant.lower() in _SHARED_TENANTS else tenant
        suffix = "/v2.0" if v2 else ""
        return {
            "token_endpoint": f"{base}/{tenant}/oauth2{suffix}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tenant}/discovery{suffix}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{shown}/v2.0" if v2 else f"https://sts.windows.net/{shown}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/{tenant}/openid/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2{suffix}/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2{suffix}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2{suffix}/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "oid",
            ],
            "tenant_region_scope": "NA",
            "cloud_instance_name": base.split("://", 1)[-1],
        }

    def _jwk(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.key_id,
            "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }

    # -- tokens -------------------------------------------------------------------------

    def token(
        self, form: Mapping[str, str], base: str, tenant: str, *, v2: bool = True
    ) -> IdentityReply:
        """The token endpoint: a grant in, Entra's token response (or OAuth error) out."""
        tid = self._tenant_id(tenant)
        if tid is None:
            return _oauth_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Use a tenant GUID, 'common' or 'organizations'.",
            )
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if not grant:
            return _oauth_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant == "refresh_token":
            return self._refresh(form, base, tid, v2=v2)
        if grant == _DEVICE_GRANT:
            return self._device_token(form, base, v2=v2)
        if not client_id:
            return _oauth_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        audience = _audience(form, v2=v2)
        if grant == "client_credentials":
            acr = _client_auth(form)
            if isinstance(acr, IdentityReply):
                return acr
            claims = {
                "appid": client_id,
                "appidacr": acr,
                "idtyp": "app",
                "oid": str(uuid.uuid5(_USER_NAMESPACE, f"app:{client_id}")),
                "sub": str(uuid.uuid5(_USER_NAMESPACE, f"app:{client_id}")),
            }
            return IdentityReply(200, self._token_body(audience, tid, claims))
        if grant == "password":
            username = form.get("username", "")
            if not username or not form.get("password"):
                return _oauth_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameters: 'username' and "
                    "'password'.",
                )
            return IdentityReply(
                200, self._user_tokens(_Grant(client_id, tid, username), audience, base, form)
            )
        return _oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'. This directory issues "
            "client_credentials, password and refresh_token grants.",
        )

    # -- device-code login -----------------------------------------------------------------

    def device_code(self, form: Mapping[str, str], base: str, tenant: str) -> IdentityReply:
        """Start a device-code login (``az login --use-device-code``): the user approves it at
        ``/devicelogin?user_code=…&username=…`` (a browser or curl), and the client's next
        poll gets that user's tokens."""
        tid = self._tenant_id(tenant)
        if tid is None:
            return _oauth_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        client_id = form.get("client_id", "")
        if not client_id:
            return _oauth_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        with self._lock:
            self._devices[device_code] = _DeviceLogin(
                client_id,
                tid,
                user_code,
                _audience(form, v2=True),
                self.clock.now() + DEVICE_CODE_LIFETIME,
            )
        where = f"{base}/devicelogin"
        return IdentityReply(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": where,
                "expires_in": DEVICE_CODE_LIFETIME,
                # Clients sleep this long between polls, in real time.
                "interval": 1,
                "message": (
                    f"To sign in, open {where}?user_code={user_code}&username=YOUR_NAME "
                    f"(a browser or curl --cacert ca.pem) to sign in as YOUR_NAME, e.g. "
                    "alice@contoso.test."
                ),
            },
        )

    def approve_device(self, user_code: str, username: str) -> IdentityReply:
        if not username:
            return _oauth_error(
                400, "invalid_request", 900144, "Name the user: ?user_code=…&username=…"
            )
        with self._lock:
            for login in self._devices.values():
                if login.user_code == user_code.strip().upper() and login.username is None:
                    login.username = username
                    return IdentityReply(200, {"user_code": login.user_code, "username": username})
        return _oauth_error(
            400, "invalid_grant", 70000, f"No device login is waiting for code '{user_code}'."
        )

    def _device_token(self, form: Mapping[str, str], base: str, *, v2: bool) -> IdentityReply:
        code = form.get("device_code", "")
        with self._lock:
            login = self._devices.get(code)
            if login is not None and (
                login.username is not None or login.expires_at <= self.clock.now()
            ):
                del self._devices[code]
        if login is None:
            return _oauth_error(
                400, "invalid_grant", 70000, "The device code is unknown or already redeemed."
            )
        if login.username is None:
            if login.expires_at <= self.clock.now():
                return _oauth_error(400, "expired_token", 70020, "The device code expired.")
            return _oauth_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        grant = _Grant(login.client_id, login.tenant, login.username)
        # The polls need not repeat the scope the login started with.
        audience = _audience(form, v2=v2) if form.get("scope") else login.audience
        return IdentityReply(200, self._user_tokens(grant, audience, base, form))

    def _refresh(self, form: Mapping[str, str], base: str, tid: str, *, v2: bool) -> IdentityReply:
        with self._lock:
            grant = self._grants.get(form.get("refresh_token", ""))
        if grant is None:
            return _oauth_error(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. The refresh token is malformed or was not issued by this "
                "directory (tokens do not survive an emulator restart: log in again).",
            )
        return IdentityReply(200, self._user_tokens(grant, _audience(form, v2=v2), base, form))

    def _user_tokens(
        self, grant: _Grant, audience: str, base: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        oid = str(uuid.uuid5(_USER_NAMESPACE, f"user:{grant.username.lower()}"))
        display = grant.username.split("@", 1)[0]
        claims = {
            "appid": grant.client_id,
            "appidacr": "0",
            "name": display,
            "oid": oid,
            "sub": oid,
            "scp": "user_impersonation",
            "upn": grant.username,
            "unique_name": grant.username,
        }
        body = self._token_body(audience, grant.tenant, claims)
        refresh = secrets.token_urlsafe(48)
        with self._lock:
            self._grants[refresh] = grant
        now = int(self.clock.now())
        body["refresh_token"] = refresh
        body["scope"] = f"{audience}/user_impersonation"
        body["id_token"] = self._sign(
            {
                "aud": grant.client_id,
                "iss": f"{base}/{grant.tenant}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + TOKEN_LIFETIME,
                "name": display,
                "oid": oid,
                "preferred_username": grant.username,
                "sub": oid,
                "tid": grant.tenant,
                "ver": "2.0",
            }
        )
        if form.get("client_info") == "1":
            body["client_info"] = _b64(
                json.dumps({"uid": oid, "utid": grant.tenant}, separators=(",", ":")).encode()
            )
        return body

    def _token_body(self, audience: str, tid: str, claims: Mapping[str, Any]) -> dict[str, Any]:
        now = int(self.clock.now())
        payload = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "tid": tid,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            **claims,
        }
        return {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._sign(payload),
        }

    def _sign(self, payload: Mapping[str, Any]) -> str:
        return jwt.encode(dict(payload), self._key, algorithm="RS256", headers={"kid": self.key_id})

    def _tenant_id(self, tenant: str) -> str | None:
        if tenant.lower() in _SHARED_TENANTS:
            return self.default_tenant
        if _GUID_RE.match(tenant):
            return tenant.lower()
        return None


def _audience(form: Mapping[str, str], *, v2: bool) -> str:
    """The resource a token is for: v2 names it by scope (``{resource}/.default``, maybe with
    ``offline_access openid profile``), v1 by ``resource``."""
    if not v2:
        return form.get("resource", "").strip() or "https://management.azure.com/"
    for scope in form.get("scope", "").split():
        if "://" in scope or scope.endswith("/.default"):
            for tail in ("/.default", "/user_impersonation"):
                if scope.endswith(tail):
                    return scope[: -len(tail)]
            return scope
    return "https://management.azure.com/"


def _client_auth(form: Mapping[str, str]) -> str | IdentityReply:
    """How the client proved itself (``appidacr``: 1 = secret, 2 = certificate), or the
    error Entra answers when it did not try."""
    if form.get("client_secret"):
        return "1"
    assertion = form.get("client_assertion", "")
    if assertion:
        if form.get("client_assertion_type") != _ASSERTION_TYPE:
            return _oauth_error(
                400,
                "invalid_request",
                50027,
                f"Invalid client_assertion_type; expected '{_ASSERTION_TYPE}'.",
            )
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error(
                401, "invalid_client", 50027, "The client_assertion is not a well-formed JWT."
            )
        if claims.get("sub") != form.get("client_id"):
            return _oauth_error(
                401,
                "invalid_client",
                700021,
                "Client assertion's 'sub' claim does not match the client_id.",
            )
        return "2"
    return _oauth_error(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def _oauth_error(status: int, error: str, code: int, text: str) -> IdentityReply:
    description = f"AADSTS{code}: {text}"
    return IdentityReply(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
