"""The simulator's gateway verifies what the official SDK signs, and refuses what was tampered with.

The verifier (monitor/simulator/signature.py) is written apart from the monitor's
signer; here it meets the reference's fixed vectors and the official
`huaweicloudsdkcore` Signer, never our own signer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.simulator.signature import (
    Claim,
    Refusal,
    canonical_request,
    date_epoch,
    lower_headers,
    parse_claim,
    verify,
)

SKEW = 15 * 60.0
HOST = "cloudbuild-ext.cn-north-4.myhuaweicloud.com"

_text = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x00"
    ),
    max_size=12,
)
_reserved = st.sampled_from([*"!#$&'()*+,:;=?@[] %~-._", "é", "中文", "🚀", "%41"])
_segment = (
    st.lists(st.one_of(_text, _reserved), max_size=4).map("".join).filter(lambda s: "/" not in s)
)
_path = st.lists(_segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))
_query_value: st.SearchStrategy[Any] = st.one_of(
    _text, st.booleans(), st.sampled_from(["", "true", "a b", "x=y&z", "a+b", "中"])
)
_query = st.lists(
    st.tuples(st.one_of(_text, st.sampled_from(["limit", "offset", "cascade"])), _query_value),
    max_size=6,
).filter(lambda q: len({(k, type(v)) for k, v in q}) == len({k for k, _ in q}))
_header_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,15}\Z").filter(
    lambda n: n.lower() not in {"host", "x-sdk-date", "authorization", "content-type"}
)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
).map(lambda v: v or "v")
_headers = st.dictionaries(_header_name, _header_value, max_size=5).map(
    lambda h: {k: v for k, v in h.items() if [n.lower() for n in h].count(k.lower()) == 1}
)
_body = st.one_of(st.just(b""), st.binary(max_size=64), _text.map(str.encode))
_epoch = st.integers(min_value=946_684_800, max_value=4_102_444_800)


@dataclass(frozen=True)
class Arrived:
    """A request as the gateway receives it."""

    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


def _check(req: Arrived, sk: str, now: float) -> Refusal | None:
    claim = parse_claim(req.headers["authorization"])
    assert claim is not None
    return verify(
        claim,
        sk=sk,
        method=req.method,
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        body=req.body,
        now=now,
        allowed_skew=SKEW,
    )


def _signed_by_sdk(
    method: str,
    path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> Arrived:
    """What reaches the gateway when the official SDK signs and sends a request."""
    request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path="/".join(quote(seg, safe="~") for seg in path.split("/")),
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    signed = Signer(BasicCredentials(ak, sk)).sign(request)
    raw_path, _, raw_query = signed.uri.partition("?")
    return Arrived(
        method, raw_path, raw_query, lower_headers(signed.header_params.items()), body or b""
    )


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=_path,
    query=_query,
    headers=_headers,
    body=_body,
    epoch=_epoch,
    ak=st.from_regex(r"\A[A-Z0-9]{20}\Z"),
    sk=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    content_type=st.sampled_from([None, "application/json", "application/octet-stream"]),
)
def test_what_the_official_sdk_signs_verifies(
    method: str,
    path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    epoch: int,
    ak: str,
    sk: str,
    content_type: str | None,
) -> None:
    if content_type is not None:
        headers = {**headers, "Content-Type": content_type}
    date = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")
    req = _signed_by_sdk(method, path, query, {**headers, "X-Sdk-Date": date}, body, ak, sk)
    assert _check(req, sk, now=epoch + 60) is None
    # ... and nothing else does: a wrong key, another path, a changed header, an old date.
    assert _check(req, sk + "x", now=epoch) is Refusal.SIGNATURE
    assert _check(replace(req, raw_path=req.raw_path + "x"), sk, now=epoch) is Refusal.SIGNATURE
    changed = {**req.headers, "x-sdk-date": date, "host": HOST + ".evil"}
    assert _check(replace(req, headers=changed), sk, now=epoch) is Refusal.SIGNATURE
    assert _check(req, sk, now=epoch + SKEW + 1) is Refusal.DATE


def _python_vector() -> Arrived:
    return Arrived(
        "GET",
        "/v1/record/94baa8ec-fd3f-4cae-81af-b24385a7220f/full-stages",
        "cascade=true",
        {
            "host": HOST,
            "x-sdk-date": "20250101T000000Z",
            "authorization": "SDK-HMAC-SHA256 Access=AKEXAMPLE000000000, "
            "SignedHeaders=host;x-sdk-date, "
            "Signature=b7864702478907f657fdfc6f658f023f32ce756166bc8615a82f16934b7a530e",
        },
        b"",
    )


PY_SK = "SKEXAMPLEsecretKEY0000000000000000000000"
PY_NOW = 1_735_689_600.0  # 20250101T000000Z


def test_the_python_sdk_vector_verifies() -> None:
    req = _python_vector()
    canonical = canonical_request(
        method="GET",
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        signed_headers=["host", "x-sdk-date"],
        body=b"",
    )
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "2da6365d9a4274e693aeaf0cb48c5a0fd608e412a302a56a3f808a6f57898632"
    )
    assert _check(req, PY_SK, now=PY_NOW) is None


def test_the_go_sdk_vector_verifies() -> None:
    req = Arrived(
        "GET",
        "/path",
        "limit=1",
        {
            "x-sdk-date": "20060102T150405Z",
            "authorization": "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, "
            "Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
        },
        b"",
    )
    now = date_epoch("20060102T150405Z")
    assert now is not None
    assert _check(req, "SecretKey", now=now) is None


def test_a_tampered_signature_header_or_path_is_refused() -> None:
    req = _python_vector()
    auth = req.headers["authorization"]
    flipped = auth[:-1] + ("f" if auth[-1] != "f" else "e")
    tampered = [
        replace(req, headers={**req.headers, "authorization": flipped}),
        replace(req, headers={**req.headers, "host": "evil.example.com"}),
        replace(req, raw_path=req.raw_path.replace("full-stages", "full-stage")),
        replace(req, raw_query="cascade=false"),
        replace(req, method="POST"),
        replace(req, body=b"{}"),
    ]
    for bad in tampered:
        assert _check(bad, PY_SK, now=PY_NOW) is Refusal.SIGNATURE, bad


def test_a_signed_header_that_did_not_arrive_or_a_non_canonical_list_is_refused() -> None:
    req = _python_vector()
    claim = parse_claim(req.headers["authorization"])
    assert claim is not None
    kw: dict[str, Any] = {
        "sk": PY_SK,
        "method": "GET",
        "raw_path": req.raw_path,
        "raw_query": req.raw_query,
        "body": b"",
        "now": PY_NOW,
        "allowed_skew": SKEW,
    }
    no_host = {k: v for k, v in req.headers.items() if k != "host"}
    assert verify(claim, headers=no_host, **kw) is Refusal.SIGNATURE
    unsorted = Claim(claim.access, ("x-sdk-date", "host"), claim.signature)
    assert verify(unsorted, headers=req.headers, **kw) is Refusal.SIGNATURE
    upper = Claim(claim.access, ("Host", "x-sdk-date"), claim.signature)
    assert verify(upper, headers=req.headers, **kw) is Refusal.SIGNATURE


def test_the_date_must_be_signed_readable_and_recent() -> None:
    req = _python_vector()
    assert _check(req, PY_SK, now=PY_NOW + SKEW) is None
    assert _check(req, PY_SK, now=PY_NOW - SKEW - 1) is Refusal.DATE
    bad_date = replace(req, headers={**req.headers, "x-sdk-date": "2025-01-01T00:00:00Z"})
    assert _check(bad_date, PY_SK, now=PY_NOW) is Refusal.DATE
    claim = parse_claim(req.headers["authorization"])
    assert claim is not None
    unsigned_date = Claim(claim.access, ("host",), claim.signature)
    refusal = verify(
        unsigned_date,
        sk=PY_SK,
        method="GET",
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        body=b"",
        now=PY_NOW,
        allowed_skew=SKEW,
    )
    assert refusal is Refusal.DATE


def test_parse_claim() -> None:
    claim = parse_claim("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=ab")
    assert claim == Claim("AK1", ("host", "x-sdk-date"), "ab")
    assert parse_claim("Bearer xyz") is None
    assert parse_claim("SDK-HMAC-SHA256 Access=AK1") is None
    assert parse_claim("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=ab") is None
