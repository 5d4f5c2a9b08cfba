"""The ARM vocabulary, with no I/O: resource IDs, the error envelope, states and the classifier."""

from armguard.arm.classify import Classification, ConflictKind, classify, classify_error
from armguard.arm.errors import ArmError, ErrorDetail, parse_error_body
from armguard.arm.ids import InvalidResourceId, ResourceId, parse_resource_id

__all__ = [
    "ArmError",
    "Classification",
    "ConflictKind",
    "ErrorDetail",
    "InvalidResourceId",
    "ResourceId",
    "classify",
    "classify_error",
    "parse_error_body",
    "parse_resource_id",
]
