"""Whether authentication works right now: counted, logged once per change, asked by /readyz."""

from __future__ import annotations

from typing import Any, Protocol

from monitor.codearts.errors import AuthFailed
from monitor.logging import get_logger


class AuthFailureCounter(Protocol):
    def count_auth_failure(self, reason: str) -> None: ...


class AuthHealth:
    """Hears every exchange's auth outcome from the client (it is the client's AuthObserver).

    Every failure is counted; the log gets `auth_failed` when authentication starts
    failing or fails for a new reason, and `auth_recovered` when it works again, so a
    watchlist of a thousand records does not log a thousand identical lines.
    """

    def __init__(self, counter: AuthFailureCounter, mode: str) -> None:
        self._counter = counter
        self._mode = mode
        self._failing: AuthFailed | None = None
        self._log: Any = get_logger("monitor.auth")

    @property
    def failing(self) -> AuthFailed | None:
        """The last failure, while authentication is failing."""
        return self._failing

    def auth_failed(self, error: AuthFailed) -> None:
        self._counter.count_auth_failure(error.reason)
        previous = self._failing
        self._failing = error
        if previous is None or previous.reason != error.reason:
            self._log.error(
                "auth_failed",
                mode=self._mode,
                reason=error.reason,
                error=str(error),
            )

    def auth_ok(self) -> None:
        if self._failing is not None:
            self._log.info("auth_recovered", mode=self._mode, reason=self._failing.reason)
            self._failing = None

    def problem(self) -> str | None:
        """A readiness problem while authentication fails, else None."""
        error = self._failing
        if error is None:
            return None
        return f"authentication failing ({self._mode}, {error.reason}): {error.message}"
