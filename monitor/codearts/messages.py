"""The request and response values that pass between the client and an auth flow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote


def canonical_query(query: list[tuple[str, str]]) -> str:
    """Pairs sorted, key and value percent-encoded with only `~` safe (as the signer wants)."""
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
        qs = canonical_query(self.query)
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
