"""``api-version`` validation: mandatory on every request, any syntactically valid date.

SDK releases move their default versions quickly (the current packages already send 2026
dates), so the emulator accepts any well-formed version rather than a list.
"""

from __future__ import annotations

import re

from armguard.arm.errors import ArmError

__all__ = ["check_api_version"]

_API_VERSION_RE = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-(preview|alpha|beta|rc|privatepreview))?$",
    re.IGNORECASE,
)


def check_api_version(value: str | None) -> str:
    if value is None or not value.strip():
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION_RE.match(value.strip()):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{value}' is invalid. The supported versions are "
            "'YYYY-MM-DD[-preview|-alpha|-beta|-rc|-privatepreview]'.",
        )
    return value.strip()
