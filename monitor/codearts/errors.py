"""One exception tree for everything that can go wrong talking to the API.

Messages never carry request headers: they may hold a token or a signature.
"""

from __future__ import annotations

from pydantic import ValidationError


class CodeArtsError(Exception):
    """Base of every API failure. `outcome` is the short label used in metrics."""

    outcome = "error"

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.error_code:
            parts.append(f"error_code={self.error_code}")
        return " ".join(parts)


class TransportError(CodeArtsError):
    """No usable HTTP answer: connection refused or reset, DNS, TLS."""

    outcome = "transport_error"


class RequestTimeout(TransportError):
    """The answer did not come within the request timeout."""

    outcome = "timeout"


class ApiError(CodeArtsError):
    """The service answered with an error (any non-2xx, or a 200 carrying an error)."""

    outcome = "api_error"


class AuthenticationError(ApiError):
    """401: the token or signature was refused (APIGW.0301)."""

    outcome = "unauthorized"


class Forbidden(ApiError):
    """403: the credentials may not read this record."""

    outcome = "forbidden"


class NotFound(ApiError):
    """404: the service does not know this record."""

    outcome = "not_found"


class Throttled(ApiError):
    """429 (APIGW.0308) or CB.00060211: too many requests."""

    outcome = "throttled"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, error_code=error_code)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the service is busy or broken; worth retrying later."""

    outcome = "server_error"


class MalformedResponse(CodeArtsError):
    """The answer was not the JSON shape the API documents."""

    outcome = "malformed"


def describe_validation_error(exc: ValidationError, what: str = "answer") -> str:
    """One line saying where an answer left the documented shape (no input values echoed)."""
    errors = exc.errors(include_input=False, include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"{what} is not valid JSON"
    first = errors[0] if errors else None
    where = ".".join(str(p) for p in first["loc"]) if first else "?"
    msg = first["msg"] if first else "invalid"
    return f"{what} does not match the documented shape: {where}: {msg}"


# Every value `AuthFailed.reason` takes: the label set of stage_monitor_auth_failures_total.
AUTH_FAILURE_REASONS = (
    "token_rejected",  # the gateway refused a token (APIGW.0301)
    "iam_rejected",  # IAM refused the user name, password, domain or project
    "iam_unavailable",  # IAM did not answer, or answered with something unusable
    "signature_rejected",  # the gateway refused an AK/SK signature
    "clock_skew",  # ... and our clock is more than the allowed 15 minutes off the gateway's
    "rejected",  # a 401 from a scheme that does not say why
)


class AuthFailed(AuthenticationError):
    """Authentication failed for a known reason; `reason` is a bounded metric label.

    Raised by auth flows: the token or signature was refused, or IAM would not
    issue a token. Messages name users and endpoints, never secret values.
    """

    outcome = "unauthorized"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        error_code: str | None = None,
    ):
        super().__init__(message, status=status, error_code=error_code)
        self.reason = reason

    def again(self) -> AuthFailed:
        """A fresh copy to raise once more (re-raising one instance grows its traceback)."""
        return AuthFailed(
            self.message, reason=self.reason, status=self.status, error_code=self.error_code
        )
