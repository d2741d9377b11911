"""AK/SK request signing (`SDK-HMAC-SHA256`), as `huaweicloudsdkcore/signer/signer.py` does it.

Pure functions: no clock, no I/O. The steps are numbered as in
`../shared/reference/codearts-build-api.md`; the tests hold them to the official
SDK's `Signer` for many generated requests and to the reference's fixed vectors.
The simulator uses the same functions to verify signatures as the gateway would.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CONTENT_HASH_HEADER = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

QueryValue = str | bool | int | Sequence[str]


@dataclass(frozen=True, slots=True)
class Signature:
    """Every intermediate of one signature; `authorization` is the header value to send."""

    canonical_request: str
    string_to_sign: str
    signed_headers: str
    signature: str
    authorization: str


def sdk_date(epoch_seconds: float) -> str:
    """Step 1: the `X-Sdk-Date` value for a moment (UTC, second precision)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime(DATE_FORMAT)


def parse_sdk_date(value: str) -> float:
    """Epoch seconds of an `X-Sdk-Date` value; ValueError when it is not one."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC).timestamp()


def _encode(value: str) -> str:
    return quote(value, safe="~")


def signed_header_names(headers: Iterable[str]) -> list[str]:
    """Step 2: every header name without `_`, lower-cased and sorted."""
    return sorted(name.lower() for name in headers if "_" not in name)


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> str:
    """Step 2: `name:value` lines (value stripped) for the signed headers, each ending in `\\n`."""
    by_name = {name.lower(): str(value).strip() for name, value in headers.items()}
    return "".join(f"{name}:{by_name[name]}\n" for name in signed)


def canonical_uri(path: str) -> str:
    """Step 3: each segment percent-encoded, with a trailing `/` (only in the signature).

    `path` is the decoded path (the SDK decodes its already-encoded path first).
    """
    uri = "/".join(_encode(segment) for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query_for_signing(query: Iterable[tuple[str, QueryValue]]) -> str:
    """Step 4: pairs sorted, key and value encoded, booleans as true/false, lists expanded."""
    parts: list[str] = []
    for key, value in sorted(query, key=lambda kv: kv[0]):
        k = _encode(key)
        if isinstance(value, bool):
            parts.append(f"{k}={_encode(str(value).lower())}")
        elif isinstance(value, str | int):
            parts.append(f"{k}={_encode(str(value))}")
        else:
            parts.extend(f"{k}={_encode(str(v))}" for v in sorted(value))
    return "&".join(parts)


def _sort_pairs(query: Iterable[tuple[str, QueryValue]]) -> list[tuple[str, QueryValue]]:
    """Pairs in the SDK's order: it sorts whole (key, value) tuples, values as given."""
    return sorted(query, key=lambda kv: (kv[0], _sort_value(kv[1])))


def _sort_value(value: QueryValue) -> tuple[int, str]:
    # Only values of one type share a key (the SDK cannot sort mixed ones); ints sort numerically.
    if isinstance(value, str):
        return (0, value)
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, int):
        return (2, f"{value:+021d}")
    return (3, "\x00".join(sorted(value)))


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    """Step 5: sha256 hex of the body; the empty hash for none; a declared content hash wins."""
    if not body:
        return EMPTY_HASH
    for name, value in headers.items():
        if name.lower() == CONTENT_HASH_HEADER.lower() and value:
            return value
    return hashlib.sha256(body).hexdigest()


def sign(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, QueryValue]],
    headers: Mapping[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> Signature:
    """Steps 2-9 for a request whose headers already carry `X-Sdk-Date` (and `Host`, if signed)."""
    date = next((v for k, v in headers.items() if k.lower() == DATE_HEADER.lower()), None)
    if date is None:
        raise ValueError(f"{DATE_HEADER} header is required")
    signed = signed_header_names(headers)
    signed_list = ";".join(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query_for_signing(_sort_pairs(query)),
            canonical_headers(headers, signed),
            signed_list,
            payload_hash(body, headers),
        ]
    )
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    signature = hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), "sha256").hexdigest()
    return Signature(
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
        signed_headers=signed_list,
        signature=signature,
        authorization=(
            f"{ALGORITHM} Access={ak}, SignedHeaders={signed_list}, Signature={signature}"
        ),
    )


def signing_headers(
    *,
    host: str,
    now: float,
    headers: Mapping[str, str],
    project_id: str | None = None,
) -> dict[str, str]:
    """Step 1: the request's headers plus `X-Sdk-Date`, `Host` and `X-Project-Id`.

    Like the SDK, a non-JSON `Content-Type` declares the payload unsigned.
    """
    out = dict(headers)
    content_type = next((v for k, v in out.items() if k.lower() == "content-type"), None)
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        out[CONTENT_HASH_HEADER] = UNSIGNED_PAYLOAD
    if not any(k.lower() == DATE_HEADER.lower() for k in out):
        out[DATE_HEADER] = sdk_date(now)
    if not any(k.lower() == "host" for k in out):
        out["Host"] = host
    if project_id and not any(k.lower() == "x-project-id" for k in out):
        out["X-Project-Id"] = project_id
    return out


@dataclass(frozen=True, slots=True)
class AuthorizationHeader:
    """A parsed `Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`."""

    access: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> AuthorizationHeader | None:
    """The parts of an SDK-HMAC-SHA256 Authorization header; None when it is not one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    try:
        return AuthorizationHeader(
            fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
        )
    except KeyError:
        return None
