"""structlog set-up: one JSON object per line on stdout, secrets filtered in one processor."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|authorization|(^|_)sk$)", re.IGNORECASE)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class SecretFilter:
    """Replaces every known secret value, wherever it appears in an event, with `***`.

    Secrets are registered once (from settings and auth schemes); call sites never
    need to remember to mask anything.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        # Very short values would blank out ordinary words; a real secret is longer.
        self._secrets.update(v for v in values if v and len(v) >= 6)

    def clear(self) -> None:
        self._secrets.clear()

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(str(value))
        return value

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        return self.scrub(value)

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key == "event":
                event_dict[key] = self.scrub(event_dict[key])
            else:
                event_dict[key] = self._scrub_item(key, event_dict[key])
        return event_dict


secret_filter = SecretFilter()


def configure_logging(
    fmt: str | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog events to `stream` (stdout) as JSON lines or readable console lines."""
    out = stream if stream is not None else sys.stdout
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            secret_filter,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "monitor") -> Any:
    return structlog.get_logger(name)
