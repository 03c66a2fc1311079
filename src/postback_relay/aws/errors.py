"""What an AWS call's failure was, in the words the relay logs and the operator CLI matches on."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError (``ConditionalCheckFailedException``, ``AccessDenied``…); "" for
    anything else, or a ClientError without one."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: BaseException) -> str:
    """A failed call for a log line or an exception message: its error code, and for a validation error its
    message (the relay's values never include a secret); the exception's type when it has no code (a timeout,
    a connection refused)."""
    if not isinstance(exc, ClientError):
        return type(exc).__name__
    code = error_code(exc) or "ClientError"
    if code != "ValidationException":
        return code
    return f"{code}: {str(exc.response.get('Error', {}).get('Message', ''))[:200]}"
