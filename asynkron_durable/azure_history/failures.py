"""DurableTask.Core's failure shape (Reason, Details, FailureDetails), both directions."""

from __future__ import annotations

from typing import Any

from asynkron_durable.azure_history.fields import Fields
from asynkron_durable.history import FailureDetails

UNKNOWN_ERROR_TYPE = "Exception"
"""The error type of a failure read from JSON that does not name one."""


def failure_details(failure: FailureDetails) -> dict[str, Any]:
    """The FailureDetails object, which carries the error type."""
    return {"ErrorType": failure.error_type, "ErrorMessage": failure.message, "StackTrace": failure.details}


def failure_fields(failure: FailureDetails) -> dict[str, Any]:
    """The fields of a failed execution, task or sub-orchestration."""
    return {
        "Reason": failure.message,
        "Details": failure.details,
        "FailureDetails": failure_details(failure),
    }


def read_failure(fields: Fields) -> FailureDetails:
    """The failure of a failed execution, task or sub-orchestration."""
    details = fields.nested("FailureDetails")
    return FailureDetails(
        error_type=(details.optional_text("ErrorType") if details else None) or UNKNOWN_ERROR_TYPE,
        message=fields.optional_text("Reason") or "",
        details=fields.optional_text("Details") or "",
    )
