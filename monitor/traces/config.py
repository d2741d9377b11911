"""Where traces go and with which headers: the OTel exporter rules, as plain functions.

Kept apart from the exporter (no aiohttp, no protobuf) so the settings can validate
with them.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

SIGNAL_PATH = "/v1/traces"


def otlp_url(value: str | None) -> str | None:
    """An OTLP/HTTP endpoint as given, or None when empty; raises ValueError if not http(s)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL (OTLP over HTTP)")
    return value


def traces_url(base: str | None, traces_endpoint: str | None, generic: str | None) -> str | None:
    """Where traces are posted, or None (export off).

    MONITOR_OTLP_ENDPOINT (a base URL), then OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
    given, the spec says), then OTEL_EXPORTER_OTLP_ENDPOINT (a base URL). A base URL
    gets `/v1/traces` appended.
    """
    if base:
        return base.rstrip("/") + SIGNAL_PATH
    if traces_endpoint:
        return traces_endpoint
    if generic:
        return generic.rstrip("/") + SIGNAL_PATH
    return None


def parse_headers(text: str) -> dict[str, str]:
    """`key1=value1,key2=value2`, values percent-decoded, as the OTel spec writes them.

    An error names the entry by its position only: the values are secrets.
    """
    out: dict[str, str] = {}
    for n, part in enumerate(text.split(","), start=1):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or not key or any(c in key for c in " \t\r\n:"):
            raise ValueError(f"entry {n} is not key=value")
        value = unquote(raw.strip())
        if any(c in value for c in "\r\n"):
            raise ValueError(f"entry {n} has a line break in its value")
        out[key] = value
    return out


def shown_url(url: str) -> str:
    """The URL without any user:password part, for log lines."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
