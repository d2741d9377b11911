"""Verifying an `SDK-HMAC-SHA256` signature as the API Gateway would, from what arrived.

Written from the algorithm in ../shared/reference/codearts-build-api.md ("AK/SK
signing"), on purpose apart from the monitor's own signer: a mistake there must not
be repeated here, or the simulator would accept what the real gateway refuses.
The gateway rebuilds the canonical request from the request as received (its raw
path and query string, the headers the client lists in `SignedHeaders`, the body)
and compares HMAC-SHA256(SK, StringToSign) with the signature the client sent.

Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "x-sdk-date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CONTENT_HASH_HEADER = "x-sdk-content-sha256"
EMPTY_HASH = hashlib.sha256(b"").hexdigest()


class Refusal(Enum):
    """Why a signed request is refused."""

    SIGNATURE = "signature"  # malformed header, unknown AK, missing header, wrong signature
    DATE = "date"  # X-Sdk-Date missing, unsigned, unreadable or too far from now


@dataclass(frozen=True, slots=True)
class Claim:
    """What `Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...` says."""

    access: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_claim(value: str) -> Claim | None:
    """The parts of an SDK-HMAC-SHA256 Authorization header; None when it is not one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    access, signed, signature = (
        fields.get("Access"),
        fields.get("SignedHeaders"),
        fields.get("Signature"),
    )
    if not access or not signed or not signature:
        return None
    return Claim(access, tuple(signed.split(";")), signature)


def date_epoch(value: str) -> float | None:
    """Epoch seconds of an `X-Sdk-Date` value (step 1); None when it is not one."""
    try:
        return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _enc(value: str) -> str:
    return quote(value, safe="~")


def uri_part(raw_path: str) -> str:
    """Step 3: the path decoded, each segment encoded again, a trailing `/` added."""
    uri = "/".join(_enc(segment) for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def query_part(raw_query: str) -> str:
    """Step 4 from the query string as sent: pairs decoded, sorted, each side encoded again.

    The client sends the canonical string itself, so `+` is never a space here:
    only percent-escapes are decoded.
    """
    pairs = []
    for item in raw_query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(pairs))


def canonical_request(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    signed_headers: Iterable[str],
    body: bytes,
) -> str:
    """Steps 2-6. `headers` maps lower-cased names to values; every signed one must be there."""
    signed = list(signed_headers)
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    if not body:
        payload = EMPTY_HASH
    else:
        payload = headers.get(CONTENT_HASH_HEADER) or hashlib.sha256(body).hexdigest()
    parts = [method.upper(), uri_part(raw_path), query_part(raw_query), lines]
    return "\n".join([*parts, ";".join(signed), payload])


def signature_of(canonical: str, date: str, sk: str) -> str:
    """Steps 7-8: hex HMAC-SHA256 over the string to sign, keyed with the SK."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), "sha256").hexdigest()


def lower_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; of a repeated header the first value counts."""
    out: dict[str, str] = {}
    for name, value in headers:
        out.setdefault(name.lower(), value)
    return out


def verify(
    claim: Claim,
    *,
    sk: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    now: float,
    allowed_skew: float,
) -> Refusal | None:
    """None when the request carries a valid signature made with `sk` within the skew."""
    signed = claim.signed_headers
    date = headers.get(DATE_HEADER)
    if date is None or DATE_HEADER not in signed:
        return Refusal.DATE
    when = date_epoch(date)
    if when is None or abs(now - when) > allowed_skew:
        return Refusal.DATE
    # Step 2 fixes the list's form: lower-case, sorted, no repeats, no `_` in a name.
    if list(signed) != sorted({n.lower() for n in signed}) or any("_" in n for n in signed):
        return Refusal.SIGNATURE
    if any(name not in headers for name in signed):
        return Refusal.SIGNATURE
    expected = signature_of(
        canonical_request(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            signed_headers=signed,
            body=body,
        ),
        date,
        sk,
    )
    if not hmac.compare_digest(expected, claim.signature):
        return Refusal.SIGNATURE
    return None
