"""The request and response values that pass between the client and an auth flow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote


def url_query_string(query: list[tuple[str, str]]) -> str:
    """The query string a request is sent with: pairs sorted, key and value percent-encoded
    with only `~` safe, so the URL sent carries the same string the AK/SK signature covers."""
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query))


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request to the API, before or after an auth flow touched it."""

    method: str
    base_url: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def url(self) -> str:
        qs = url_query_string(self.query)
        return f"{self.base_url}{self.path}" + (f"?{qs}" if qs else "")

    def with_header_map(self, extra: Mapping[str, str]) -> ApiRequest:
        """A copy with these headers added (or replaced)."""
        return replace(self, headers={**self.headers, **extra})


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """The parts of an HTTP answer the client and auth flows look at."""

    status: int
    headers: Mapping[str, str]
    body: bytes


MAX_ERROR_MESSAGE = 200


def clip_message(text: str) -> str:
    """An error message on one line, at most MAX_ERROR_MESSAGE characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def error_fields(data: object) -> tuple[str | None, str | None]:
    """(code, message) of an error body, whichever of the documented shapes it has.

    CodeArts and the API Gateway write `error_code`/`error_msg`; IAM (keystone) nests
    `{"error": {"code", "message"}}`; a 200 with `"status": "fail"` carries an
    `error` object or string (its shape is not documented).
    """
    if not isinstance(data, Mapping):
        return None, None
    code, msg = data.get("error_code"), data.get("error_msg")
    err = data.get("error")
    if isinstance(err, Mapping):
        code = code or err.get("error_code") or err.get("code")
        msg = msg or err.get("error_msg") or err.get("message")
    elif isinstance(err, str):
        msg = msg or err
    return (str(code) if code not in (None, "") else None), (str(msg) if msg else None)


def response_error(response: ApiResponse) -> tuple[str | None, str]:
    """(code, clipped message) of an error answer; the message falls back to `HTTP <status>`."""
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:
        data = None
    code, msg = error_fields(data)
    return code, clip_message(msg or f"HTTP {response.status}")
