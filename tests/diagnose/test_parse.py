"""The parser reads each shape a person pastes and pulls out the facts explain needs."""

from __future__ import annotations

import io
import json

import pytest

from armguard.diagnose.excerpt import excerpt
from armguard.diagnose.parse import ParsedError, parse_error_text

SUB = "11111111-2222-3333-4444-555555555555"
VNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-a"
)
OP_URL = (
    f"https://management.azure.com/subscriptions/{SUB}/providers/Microsoft.Network/locations/"
    "westeurope/operations/3f9b2c1a-7e54-4d2b-9a10-2c8f1d6e4b77?api-version=2024-05-01"
)
IN_PROGRESS_MSG = (
    "Another operation on this or dependent resource is in progress. To retrieve status of the "
    f"operation use uri: {OP_URL}."
)


def parsed(text: str) -> ParsedError:
    result = parse_error_text(text)
    assert result is not None, text[:300]
    return result


def codes(p: ParsedError) -> list[str]:
    return [n.code for n in p.error.walk() if n.code]


def test_az_cli_output_reads_code_message_and_operation_url() -> None:
    text = f"ERROR: (Conflict) {IN_PROGRESS_MSG}\nCode: Conflict\nMessage: {IN_PROGRESS_MSG}\n"
    p = parsed(text)
    assert p.code == "Conflict"
    assert p.message == IN_PROGRESS_MSG
    assert p.error.details == ()  # the repeated Code:/Message: pair is one error, not two
    assert p.operation_url == OP_URL
    assert p.status == 409  # a code that is a reason phrase implies the status
    assert p.format == "az"


def test_python_sdk_exception_details_nest_the_json_cause() -> None:
    inner = {
        "status": "Failed",
        "error": {
            "code": "ResourceDeploymentFailure",
            "message": "The resource write operation failed to complete successfully.",
            "details": [{"code": "AnotherOperationInProgress", "message": IN_PROGRESS_MSG}],
        },
    }
    body = json.dumps(inner, indent=2)
    text = (
        "azure.core.exceptions.HttpResponseError: (DeploymentFailed) At least one resource "
        "deployment operation failed.\nCode: DeploymentFailed\nMessage: At least one resource "
        f"deployment operation failed.\nException Details:\t(Conflict) {body}\n\tCode: Conflict\n"
        f"\tMessage: {body}\n"
    )
    p = parsed(text)
    assert p.code == "DeploymentFailed"
    assert codes(p)[:1] == ["DeploymentFailed"]
    assert {"Conflict", "ResourceDeploymentFailure", "AnotherOperationInProgress"} <= set(codes(p))
    assert p.format == "python"


def test_terraform_autorest_line_with_status_code_and_details() -> None:
    text = (
        'Error: updating Subnet "snet": network.SubnetsClient#CreateOrUpdate: Failure sending '
        "request: StatusCode=429 -- Original Error: autorest/azure: Service returned an error. "
        'Status=429 Code="RetryableError" Message="A retryable error occurred." '
        'Details=[{"code":"RetryableErrorDueToAnotherOperation","message":"Operation '
        'PutSubnetOperation (abc) is updating resource def. The call can be retried in 9 seconds."}]'
    )
    p = parsed(text)
    assert p.status == 429
    assert codes(p) == ["RetryableError", "RetryableErrorDueToAnotherOperation"]
    assert p.format == "terraform"


def test_terraform_azcore_block_reads_status_body_and_labelled_scope() -> None:
    body = {"error": {"code": "ScopeLocked", "message": "The scope is locked."}}
    text = (
        f'│ Error: deleting Subnet (Subscription: "{SUB}"\n│ Resource Group Name: "rg-net"\n'
        '│ Virtual Network Name: "vnet-a"): performing Delete: unexpected status 409 (409 '
        f"Conflict) with response: {json.dumps(body)}\n"
    )
    p = parsed(text)
    assert p.status == 409
    assert p.code == "ScopeLocked"
    assert [str(r) for r in p.resource_ids] == [f"/subscriptions/{SUB}/resourceGroups/rg-net"]


def test_go_azcore_response_block() -> None:
    body = json.dumps({"error": {"code": "ResourceNotFound", "message": "gone"}}, indent=2)
    text = (
        f"GET https://management.azure.com{VNET}\n{'-' * 80}\nRESPONSE 404: 404 Not Found\n"
        f"ERROR CODE: ResourceNotFound\n{'-' * 80}\n{body}\n{'-' * 80}\n"
    )
    p = parsed(text)
    assert (p.status, p.code, p.message) == (404, "ResourceNotFound", "gone")
    assert [str(r) for r in p.resource_ids] == [VNET]


def test_js_rest_error_reads_code_and_status_code() -> None:
    text = (
        "RestError: Unable to edit or replace deployment 'rollout': previous deployment from "
        "'1/2/2026 3:01:12 AM' is still active (expiration time is '1/9/2026 3:01:10 AM').\n"
        "    at handleErrorResponse (deserializationPolicy.js:260:17) {\n"
        "  code: 'DeploymentActive',\n  statusCode: 409,\n"
    )
    p = parsed(text)
    assert (p.code, p.status, p.format) == ("DeploymentActive", 409, "js")
    assert p.deployment_name == "rollout"


def test_dotnet_request_failed_exception_with_content_and_headers() -> None:
    body = {"error": {"code": "AnotherOperationInProgress", "message": IN_PROGRESS_MSG}}
    text = (
        f"Azure.RequestFailedException: {IN_PROGRESS_MSG}\nStatus: 409 (Conflict)\n"
        f"ErrorCode: AnotherOperationInProgress\n\nContent:\n{json.dumps(body)}\n\nHeaders:\n"
        "Retry-After: 17\nx-ms-correlation-request-id: 7aa8f7c2-1111-4444-9999-4d8f92000000\n"
        "x-ms-request-id: 1b2c3d4e-1111-4444-9999-4d8f92000001\n"
    )
    p = parsed(text)
    assert (p.code, p.status, p.format) == ("AnotherOperationInProgress", 409, "dotnet")
    assert p.retry_after == 17.0
    assert p.correlation_ids == ("7aa8f7c2-1111-4444-9999-4d8f92000000",)
    assert p.request_ids == ("1b2c3d4e-1111-4444-9999-4d8f92000001",)
    assert p.operation_url == OP_URL


def test_powershell_error_code_and_message_lines() -> None:
    text = (
        "Update-AzVM : Unable to resize the VM because the requested size Standard_D4s_v5 is not "
        "available in the cluster where the VM is currently allocated.\n"
        "ErrorCode: OperationNotAllowed\nErrorMessage: Unable to resize the VM because the "
        "requested size Standard_D4s_v5 is not available in the cluster where the VM is currently "
        "allocated. To resize your VM to Standard_D4s_v5 please deallocate.\nErrorTarget:\n"
        "StatusCode: 409\nReasonPhrase: Conflict\n"
    )
    p = parsed(text)
    assert (p.code, p.status, p.format) == ("OperationNotAllowed", 409, "powershell")
    assert p.message.endswith("please deallocate.")
    assert p.vm_size == "Standard_D4s_v5"


def test_powershell_status_phrase_without_number() -> None:
    p = parsed("Status Code: Conflict\nErrorCode: ScopeLocked\nErrorMessage: locked.\n")
    assert (p.status, p.code, p.message) == (409, "ScopeLocked", "locked.")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"error": {"code": "PreconditionFailed", "message": "Precondition failed."}},
            "PreconditionFailed",
        ),
        ({"code": "OperationNotAllowed", "message": "flat AKS-style body"}, "OperationNotAllowed"),
        (
            {"status": "Failed", "error": {"code": "InternalError", "message": "op failed"}},
            "InternalError",
        ),
        ({"Code": "Conflict", "Message": "App Service PascalCase keys"}, "Conflict"),
        (
            {"HttpStatusCode": 409, "ErrorCode": "OperationNotAllowed", "ErrorMessage": "x"},
            "OperationNotAllowed",
        ),
    ],
)
def test_raw_json_bodies_wrapped_flat_and_operation_status(
    body: dict[str, object], code: str
) -> None:
    p = parsed(json.dumps(body))
    assert p.code == code
    assert p.format == "json"


def test_activity_log_event_unwraps_status_message_string() -> None:
    vm = f"/subscriptions/{SUB}/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-01"
    event = {
        "correlationId": "c0ffee00-1111-2222-3333-444444444444",
        "resourceId": vm,
        "id": f"{vm}/events/0e1f2a3b-0000-1111-2222-333333333333/ticks/638500000000000000",
        "properties": {
            "statusCode": "Conflict",
            "statusMessage": json.dumps(
                {"error": {"code": "OperationNotAllowed", "message": "since the VM is running"}}
            ),
        },
    }
    p = parsed(json.dumps(event, indent=2))
    assert (p.code, p.status, p.format) == ("OperationNotAllowed", 409, "activity_log")
    # The event's own ID (…/events/…/ticks/…) is the same VM, not a second resource.
    assert [str(r) for r in p.resource_ids] == [vm]
    assert p.correlation_ids == ("c0ffee00-1111-2222-3333-444444444444",)


def test_status_message_pasted_alone_as_an_escaped_string() -> None:
    inner = json.dumps({"error": {"code": "RequestDisallowedByPolicy", "message": "denied"}})
    p = parsed(json.dumps(inner))
    assert p.code == "RequestDisallowedByPolicy"


def test_deployment_failed_reads_json_inside_detail_messages() -> None:
    cause = {
        "status": "Failed",
        "error": {"code": "AnotherOperationInProgress", "message": IN_PROGRESS_MSG},
    }
    body = {
        "status": "Failed",
        "error": {
            "code": "DeploymentFailed",
            "target": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Resources/deployments/app-rollout",
            "message": "At least one resource deployment operation failed.",
            "details": [{"code": "Conflict", "message": json.dumps(cause, indent=2)}],
        },
    }
    p = parsed("ERROR: " + json.dumps(body))
    assert codes(p) == ["DeploymentFailed", "Conflict", "AnotherOperationInProgress"]
    assert p.deployment_name == "app-rollout"
    assert p.operation_url == OP_URL


def test_if_match_etags_are_unescaped() -> None:
    body = {
        "error": {
            "code": "PreconditionFailed",
            "message": "Precondition failed.",
            "details": [
                {
                    "code": "PreconditionFailedEtagMismatch",
                    "message": f'Etag provided in if-match header W/"aaa-1" does not match etag W/"bbb-2" of resource {VNET}',
                }
            ],
        }
    }
    p = parsed(json.dumps(json.dumps(body)))  # escaped twice, as inside an Activity Log field
    assert (p.etag_submitted, p.etag_live) == ('W/"aaa-1"', 'W/"bbb-2"')


def test_submitted_and_live_etag_log_lines() -> None:
    text = (
        "2026-04-27T10:16:42Z resource=/subscriptions/123/resourceGroups/prod/providers/"
        "Microsoft.Storage/storageAccounts/mediaeast\n"
        'submittedEtag="W/\\"datetime\'2026-04-27T10%3A12%3A09.100Z\'\\"" '
        'liveEtag="W/\\"datetime\'2026-04-27T10%3A15%3A31.420Z\'\\""\n'
        "status=412 error=ResourceModified writer=tag-normalizer\n"
    )
    p = parsed(text)
    assert p.status == 412
    assert p.code == "ResourceModified"
    assert p.etag_submitted == "W/\"datetime'2026-04-27T10%3A12%3A09.100Z'\""
    assert p.etag_live == "W/\"datetime'2026-04-27T10%3A15%3A31.420Z'\""


def test_unparsable_resource_ids_are_ignored() -> None:
    text = (
        f'Code="ResourceNotFound" Message="see {VNET}/subnets/a and /subscriptions/.../x and '
        '/subscriptions/{sub}/resourceGroups/rg and /subscriptions/s/bogus/thing"'
    )
    p = parsed(text)
    assert [str(r) for r in p.resource_ids] == [f"{VNET}/subnets/a"]


def test_retry_after_from_a_header_dump() -> None:
    text = "response: {\n  status: 429,\n  headers: {\n    'retry-after': '5',\n  },\n"
    p = parsed(text)
    assert (p.status, p.retry_after) == (429, 5.0)


def test_unknown_shape_falls_back_to_known_codes_in_the_text() -> None:
    p = parsed("pipeline step 4 died: ScopeLocked somewhere in the middle of a sentence")
    assert p.code == "ScopeLocked"


def test_truncated_body_keeps_its_codes_and_words() -> None:
    text = '{"error": {"code": "PreconditionFailed", "details": [{"code": "PreconditionFailedEtagMismatch", "message": "Etag provided in if-match header W/\\"x\\" does not'
    p = parsed(text)
    assert codes(p) == ["PreconditionFailed", "PreconditionFailedEtagMismatch"]
    # The undecoded body's words stay visible to the classifier.
    assert "if-match header" in p.message + p.residue


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "The build succeeded in 3 minutes.",
        "Conflict resolution meeting at 10:00",
        "{not json at all",
        "\x00\x01\x02binary",
    ],
)
def test_text_without_an_arm_error_is_not_one(text: str) -> None:
    assert parse_error_text(text) is None


def test_brace_heavy_garbage_is_parsed_in_bounded_time() -> None:
    # Decode attempts are capped (_MAX_JSON_STARTS), so this is 400 attempts, not 200,000.
    text = "{" * 200_000 + " Code: AnotherOperationInProgress"
    p = parsed(text)
    assert p.code == "AnotherOperationInProgress"


def test_a_log_of_many_message_lines_is_read_once() -> None:
    # 1 MB of Code:/Message: pairs: re-reading the rest of the text from each of its 28,000
    # messages (as the message reader once did) is 14 GB of copying, minutes; reading each
    # message's own lines is a second.
    block = "Code: InvalidParameter\nMessage: bad value\ncontinued here\n\n"
    text = block * 20_000
    assert len(text) > 1_000_000
    p = parsed(text)
    assert p.code == "InvalidParameter"
    assert p.message == "bad value continued here"


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        # The word alone is not the format: this is az's output, pasted after a sentence.
        (
            "After terraform apply I ran az vm resize and got:\n(OperationNotAllowed) Operation "
            "'resize' is not allowed on VM 'v' since the VM is running.\nCode: OperationNotAllowed",
            "az",
        ),
        # Terraform by its diagnostics: the resource address and the .tf location.
        (
            'Error: waiting for creation: Code="AnotherOperationInProgress" Message="busy"\n\n'
            '  with azurerm_subnet.app,\n  on network.tf line 12, in resource "azurerm_subnet" "app":',
            "terraform",
        ),
        (
            "performing CreateOrUpdate: unexpected status 409 (409 Conflict) with error: "
            "AnotherOperationInProgress: busy",
            "terraform",
        ),
        # A Go program's azcore block is Go, whoever ran it.
        ("RESPONSE 409: 409 Conflict\nERROR CODE: AnotherOperationInProgress\n", "go"),
        (
            "  azure-native:network:Subnet (app):\n    error: autorest/azure: Service returned an "
            'error. Status=<nil> Code="AnotherOperationInProgress" Message="busy"',
            "pulumi",
        ),
    ],
)
def test_the_format_is_read_from_the_structure(text: str, fmt: str) -> None:
    assert parsed(text).format == fmt


def test_xml_error_bodies_are_read() -> None:
    facts = parse_error_text(
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>ConditionNotMet</Code><Message>The '
        "condition specified using HTTP conditional header(s) is not met.\nRequestId:1</Message>"
        "</Error>"
    )
    assert facts is not None
    assert facts.code == "ConditionNotMet"
    assert "conditional header(s) is not met" in facts.message


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("The remote server returned an error: (412) The append position condition", 412),
        ("Error type: 409\nError Message: conflicts with the pending operation", 409),
        ("Error: The gateway did not receive a response (CODE: 504)", 504),
        ("PUT https://management.azure.com/x failed with 429", 429),
        ("[error] Error: HttpError: 503 ", 503),
        ("(409) Conflict: The scope is locked", 409),
    ],
)
def test_statuses_as_tools_print_them(text: str, status: int) -> None:
    facts = parse_error_text(text)
    assert facts is not None
    assert facts.status == status


def test_a_key_line_in_a_numbered_list_is_read() -> None:
    facts = parse_error_text("1. ErrorCode:AuthorizationPermissionMismatch \n2. ErrorMessage:no")
    assert facts is not None
    assert facts.code == "AuthorizationPermissionMismatch"


def _log(lines: int, middle: bytes = b"", end: bytes = b"") -> io.BytesIO:
    step = b"2026-12-05T10:00:00Z ##[section]compiled module: 0 warnings, 0 errors\n"
    return io.BytesIO(step * (lines // 2) + middle + step * (lines // 2) + end)


def test_excerpt_of_a_long_log_is_bounded_and_keeps_the_errors() -> None:
    middle = b'##[error]Error: {"code": "ScopeLocked", "message": "locked"}\n'
    end = b"ERROR: (AnotherOperationInProgress) busy\n"
    read = excerpt(_log(80_000, middle, end))
    assert read.total_bytes > 5_000_000
    assert read.cut
    assert len(read.data) < 800_000
    assert middle in read.data
    assert read.data.endswith(end)
    # The build's "0 errors" summaries are not errors: only the real one was kept.
    assert read.kept_middle_lines == 1 + 40


def test_excerpt_of_a_short_text_is_the_text() -> None:
    text = b"ERROR: (Conflict) busy\nCode: Conflict\n"
    read = excerpt(io.BytesIO(text))
    assert (read.data, read.cut, read.binary) == (text, False, False)
    assert excerpt(io.BytesIO(b"\x00\x01 binary")).binary
