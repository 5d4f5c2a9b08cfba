"""The local Entra ID and the cloud metadata document, over https, with real login clients:
azure-identity's credentials and MSAL get tokens from the emulator, the official SDK writes
with them, and the Activity Log names the caller the token was minted for."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from armguard.emulator.identity import DEFAULT_TENANT
from armguard.testing import EmulatorHandle, emulator

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[EmulatorHandle]:
    with emulator(time_scale=0, tls_dir=tmp_path / "certs") as handle:
        yield handle


@pytest.fixture
def http(tls: EmulatorHandle) -> Iterator[httpx.Client]:
    assert tls.ca_file is not None
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    with httpx.Client(base_url=tls.base_url, verify=context) as client:
        yield client


def _callers(tls: EmulatorHandle, http: httpx.Client, token: str) -> set[str]:
    response = http.get(
        f"/subscriptions/{SUB}/providers/microsoft.insights/eventtypes/management/values",
        params={
            "api-version": "2015-04-01",
            "$filter": "eventTimestamp ge '2025-01-01T00:00:00Z'",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return {event["caller"] for event in response.json()["value"]}


def _create_group(tls: EmulatorHandle, credential: Any, name: str) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    assert tls.ca_file is not None
    client = ResourceManagementClient(
        credential,
        SUB,
        base_url=tls.base_url,
        credential_scopes=[f"{tls.base_url}/.default"],
        connection_verify=str(tls.ca_file),
    )
    with client:
        assert client.resource_groups.create_or_update(name, {"location": "eastus"}).name == name


def test_the_metadata_document_needs_no_token_and_names_the_emulator(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    base = tls.base_url
    doc = http.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
    assert doc["resourceManager"] == f"{base}/"
    assert doc["authentication"]["loginEndpoint"] == base
    assert doc["authentication"]["audiences"] == [f"{base}/"]
    clouds = http.get("/metadata/endpoints", params={"api-version": "2019-05-01"}).json()
    assert [c["resourceManager"] for c in clouds] == [f"{base}/"]
    legacy = http.get("/metadata/endpoints", params={"api-version": "2015-01-01"}).json()
    assert legacy["authentication"]["loginEndpoint"] == f"{base}/"
    missing = http.get("/metadata/endpoints")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert http.post("/metadata/endpoints?api-version=2022-09-01").status_code == 405


def test_a_service_principal_with_a_secret_logs_in_through_azure_identity(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        TENANT,
        "deploy-pipeline",
        "any-secret",
        authority=tls.base_url,
        disable_instance_discovery=True,
        connection_verify=str(tls.ca_file),
    )
    with credential:
        token = credential.get_token(f"{tls.base_url}/.default").token
        _create_group(tls, credential, "rg-secret")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["appid"] == "deploy-pipeline"
    assert claims["appidacr"] == "1"
    assert claims["tid"] == TENANT
    assert claims["aud"] == tls.base_url
    assert "deploy-pipeline" in _callers(tls, http, token)


def _certificate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagger")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)


def test_a_service_principal_with_a_certificate_logs_in_and_the_token_verifies(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    from azure.identity import CertificateCredential

    credential = CertificateCredential(
        TENANT,
        "tagger",
        certificate_data=_certificate_pem(),
        authority=tls.base_url,
        disable_instance_discovery=True,
        connection_verify=str(tls.ca_file),
    )
    with credential:
        token = credential.get_token(f"{tls.base_url}/.default").token
        _create_group(tls, credential, "rg-cert")
    # The directory publishes its signing key where OpenID discovery says.
    config = http.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
    keys = http.get(config["jwks_uri"].removeprefix(tls.base_url)).json()["keys"]
    key = jwt.PyJWK(keys[0]).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=tls.base_url)
    assert claims["appid"] == "tagger"
    assert claims["appidacr"] == "2"
    assert "tagger" in _callers(tls, http, token)


def test_a_user_logs_in_with_msal_and_keeps_an_account_it_can_refresh(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    with _msal_session(tls) as session:
        _log_in_and_refresh(tls, http, session)


def _log_in_and_refresh(tls: EmulatorHandle, http: httpx.Client, session: Any) -> None:
    client_id = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    scopes = [f"{tls.base_url}/.default"]
    # The password grant as az sends it (MSAL itself cannot send it to a host:port authority:
    # it looks the user's realm up on the host without the port).
    login = http.post(
        "/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": "alice@contoso.test",
            "password": "pw",
            "scope": f"{scopes[0]} offline_access openid profile",
            "client_info": "1",
        },
    )
    assert login.status_code == 200, login.text
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= login.json().keys()
    app = msal.PublicClientApplication(
        client_id,
        authority=f"{tls.base_url}/organizations",
        instance_discovery=f"{tls.base_url}/common/discovery/instance",
        http_client=session,
    )
    # MSAL redeems the refresh token and keeps the account its id_token and client_info name.
    result = app.acquire_token_by_refresh_token(login.json()["refresh_token"], scopes)
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == "alice@contoso.test"
    assert result["id_token_claims"]["tid"] == DEFAULT_TENANT
    (account,) = app.get_accounts()
    assert account["username"] == "alice@contoso.test"
    refreshed = app.acquire_token_silent(scopes, account=account, force_refresh=True)
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    claims = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert claims["upn"] == "alice@contoso.test"
    response = http.put(
        f"/subscriptions/{SUB}/resourcegroups/rg-user",
        params={"api-version": "2024-03-01"},
        json={"location": "eastus"},
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    )
    assert response.status_code == 201, response.text
    assert "alice@contoso.test" in _callers(tls, http, refreshed["access_token"])


def _msal_session(tls: EmulatorHandle) -> Any:
    import requests

    session = requests.Session()
    session.verify = str(tls.ca_file)
    # Otherwise REQUESTS_CA_BUNDLE, when set, wins over the session's own setting.
    session.trust_env = False
    return session


def test_instance_discovery_names_the_tenant_discovery_endpoint(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    found = http.get(
        "/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"{tls.base_url}/{TENANT}/oauth2/v2.0/authorize",
        },
    ).json()
    assert found["tenant_discovery_endpoint"] == (
        f"{tls.base_url}/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    elsewhere = http.get(
        "/common/discovery/instance",
        params={"authorization_endpoint": "https://login.example.test/x/oauth2/v2.0/authorize"},
    )
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_instance"


@pytest.mark.parametrize(
    ("path", "form", "status", "error"),
    [
        (f"/{TENANT}/oauth2/v2.0/token", {"client_id": "a"}, 400, "invalid_request"),
        (
            f"/{TENANT}/oauth2/v2.0/token",
            {"grant_type": "client_credentials", "client_id": "a", "scope": "x/.default"},
            401,
            "invalid_client",
        ),
        (
            f"/{TENANT}/oauth2/v2.0/token",
            {"grant_type": "client_credentials", "client_secret": "s"},
            400,
            "invalid_request",
        ),
        (
            f"/{TENANT}/oauth2/v2.0/token",
            {"grant_type": "authorization_code", "client_id": "a", "code": "c"},
            400,
            "unsupported_grant_type",
        ),
        (
            f"/{TENANT}/oauth2/v2.0/token",
            {"grant_type": "refresh_token", "client_id": "a", "refresh_token": "forged"},
            400,
            "invalid_grant",
        ),
        (
            "/contoso.example/oauth2/v2.0/token",
            {"grant_type": "client_credentials", "client_id": "a", "client_secret": "s"},
            400,
            "invalid_tenant",
        ),
    ],
)
def test_bad_token_requests_get_entra_shaped_errors(
    http: httpx.Client, path: str, form: dict[str, str], status: int, error: str
) -> None:
    response = http.post(path, data=form)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith("AADSTS")
    assert http.get(path).status_code == 405


def test_a_v1_token_request_names_its_audience_by_resource(http: httpx.Client) -> None:
    response = http.post(
        "/common/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "legacy-app",
            "client_secret": "s",
            "resource": "https://management.core.windows.net/",
        },
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://management.core.windows.net/"
    assert claims["tid"] == DEFAULT_TENANT


def test_a_device_code_login_waits_for_approval_then_names_the_user(
    tls: EmulatorHandle, http: httpx.Client
) -> None:
    with _msal_session(tls) as session:
        app = msal.PublicClientApplication(
            "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            authority=f"{tls.base_url}/organizations",
            instance_discovery=f"{tls.base_url}/common/discovery/instance",
            http_client=session,
        )
        flow = app.initiate_device_flow(scopes=[f"{tls.base_url}/.default"])
        assert flow["verification_uri"] == f"{tls.base_url}/devicelogin"
        assert flow["user_code"] in flow["message"]
        pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
        assert pending["error"] == "authorization_pending"
        approved = http.get(
            "/devicelogin",
            params={"user_code": flow["user_code"], "username": "bob@contoso.test"},
        )
        assert approved.status_code == 200, approved.text
        # A code is approved once.
        again = http.get(
            "/devicelogin",
            params={"user_code": flow["user_code"], "username": "mallory@contoso.test"},
        )
        assert again.status_code == 400
        result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
        assert "access_token" in result, result
        assert result["id_token_claims"]["preferred_username"] == "bob@contoso.test"
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["aud"] == tls.base_url
        assert claims["upn"] == "bob@contoso.test"
        assert [a["username"] for a in app.get_accounts()] == ["bob@contoso.test"]
        redeemed = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
        assert redeemed["error"] == "invalid_grant"
