"""The cloud metadata document: the fields az and Terraform read, in the form each asks for."""

from __future__ import annotations

import pytest

from armguard.arm.metadata import DEFAULT_SUFFIXES, metadata_document, metadata_response

ARM = "https://127.0.0.1:8443"


def _document() -> dict[str, object]:
    return metadata_document(
        ARM, login_endpoint="https://login.example.test/", audiences=[f"{ARM}/"]
    )


def test_the_document_names_the_resource_manager_and_where_to_log_in() -> None:
    doc = metadata_document(
        ARM,
        login_endpoint="https://login.microsoftonline.com/",
        audiences=["https://management.core.windows.net/", "https://management.azure.com/"],
        tenant="contoso.onmicrosoft.com",
        name="ArmguardProxy",
        suffixes={"storage": "storage.example.test"},
    )
    assert doc["resourceManager"] == f"{ARM}/"
    assert doc["authentication"] == {
        "loginEndpoint": "https://login.microsoftonline.com",
        "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
        "tenant": "contoso.onmicrosoft.com",
        "identityProvider": "AAD",
    }
    assert doc["name"] == "ArmguardProxy"
    assert doc["suffixes"]["storage"] == "storage.example.test"
    assert doc["suffixes"]["keyVaultDns"] == DEFAULT_SUFFIXES["keyVaultDns"]
    # go-azure-sdk (Terraform) refuses a document without these.
    assert doc["microsoftGraphResourceId"]
    assert doc["graph"] == "https://graph.windows.net/"


def test_the_document_is_a_fresh_value_each_call() -> None:
    first = _document()
    first["authentication"]["audiences"].append("x")  # type: ignore[index]
    first["suffixes"]["storage"] = "changed"  # type: ignore[index]
    assert _document()["authentication"]["audiences"] == [f"{ARM}/"]  # type: ignore[index]
    assert _document()["suffixes"]["storage"] == "core.windows.net"  # type: ignore[index]


@pytest.mark.parametrize("version", ["2022-09-01", "2023-01-01", "2024-05-01-preview"])
def test_2022_09_01_and_later_answer_one_object(version: str) -> None:
    # What az cloud register --endpoint-resource-manager and go-azure-sdk ask for.
    assert metadata_response(_document(), version) == _document()


@pytest.mark.parametrize("version", ["2019-05-01", "2020-06-01", "2022-08-01"])
def test_2019_05_01_to_2022_answer_a_list_of_clouds(version: str) -> None:
    answer = metadata_response(_document(), version)
    assert isinstance(answer, list)
    assert len(answer) == 1
    cloud = answer[0]
    assert cloud["name"] == "AzureCloud"
    assert cloud["resourceManager"] == f"{ARM}/"
    assert "microsoftGraphResourceId" not in cloud


@pytest.mark.parametrize("version", ["1.0", "2015-01-01", "2018-01-01"])
def test_older_versions_answer_the_legacy_object(version: str) -> None:
    assert metadata_response(_document(), version) == {
        "galleryEndpoint": "https://gallery.azure.com/",
        "graphEndpoint": "https://graph.windows.net/",
        "portalEndpoint": "https://portal.azure.com/",
        "authentication": {
            "loginEndpoint": "https://login.example.test/",
            "audiences": [f"{ARM}/"],
        },
    }
