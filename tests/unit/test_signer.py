"""The AK/SK signer equals the official SDK's `Signer`, and reproduces the reference's vectors."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.codearts.auth.signer import (
    parse_authorization,
    parse_sdk_date,
    sdk_date,
    sign,
    signing_headers,
)

# Printable text across scripts: ASCII reserved characters, CJK, accents, emoji.
_text = st.text(
    alphabet=st.characters(
        codec="utf-8",
        categories=("L", "N", "P", "S", "Zs"),
        exclude_characters="\x00",
    ),
    max_size=12,
)
_reserved = st.sampled_from([*"!#$&'()*+,:;=?@[] %~-._", "é", "中文", "ü", "🚀", "%41"])
_segment = (
    st.lists(st.one_of(_text, _reserved), max_size=4).map("".join).filter(lambda s: "/" not in s)
)
_path = st.lists(_segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))
_query_value: st.SearchStrategy[Any] = st.one_of(
    _text, st.booleans(), st.sampled_from(["", "true", "a b", "x=y&z", "中"])
)
_query = st.lists(
    st.tuples(st.one_of(_text, st.sampled_from(["limit", "offset", "cascade"])), _query_value),
    max_size=6,
).filter(lambda q: _comparable(q))
_header_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,15}\Z")
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
).map(lambda v: v or "v")
_headers = st.dictionaries(_header_name, _header_value, max_size=5)
_body = st.one_of(st.just(b""), st.binary(max_size=64), _text.map(str.encode))
_date = st.integers(min_value=946_684_800, max_value=4_102_444_800).map(sdk_date)


def _comparable(query: list[tuple[str, Any]]) -> bool:
    # The SDK sorts whole pairs: a key given both a bool and a string cannot be sorted there.
    kinds: dict[str, set[type]] = {}
    for k, v in query:
        kinds.setdefault(k, set()).add(type(v))
    return all(len(t) == 1 for t in kinds.values())


def _unique_case_insensitive(headers: dict[str, str]) -> dict[str, str]:
    # Two names differing only in case are one HTTP header; the SDK would sign it twice.
    out: dict[str, str] = {}
    seen: set[str] = set()
    for k, v in headers.items():
        if k.lower() in seen or k.lower() in {"host", "x-sdk-date", "authorization"}:
            continue
        seen.add(k.lower())
        out[k] = v
    return out


def _official(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
) -> tuple[str, str]:
    """The official signer's Authorization header and the URI it would send."""
    resource_path = "/".join(quote(seg, safe="~") for seg in path.split("/"))
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=resource_path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    signed = Signer(BasicCredentials(ak, sk)).sign(request)
    return signed.header_params["Authorization"], signed.uri


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "get"]),
    path=_path,
    query=_query,
    headers=_headers.map(_unique_case_insensitive),
    body=_body,
    date=_date,
    ak=st.from_regex(r"\A[A-Z0-9]{20}\Z"),
    sk=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    content_type=st.sampled_from(
        [None, "application/json", "application/json;charset=UTF-8", "application/octet-stream"]
    ),
)
def test_signature_equals_official_sdk(
    method: str,
    path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    date: str,
    ak: str,
    sk: str,
    content_type: str | None,
) -> None:
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    host = "cloudbuild-ext.cn-north-4.myhuaweicloud.com"
    ours_headers = signing_headers(
        host=host, now=parse_sdk_date(date), headers=headers, project_id=None
    )
    ours = sign(
        method=method, path=path, query=query, headers=ours_headers, body=body, ak=ak, sk=sk
    )
    sdk_headers = dict(headers)
    sdk_headers["X-Sdk-Date"] = date
    official, uri = _official(method, host, path, query, sdk_headers, body, ak, sk)
    assert ours.authorization == official
    # The query string the SDK sends is the canonical one.
    assert uri.partition("?")[2] == ours.canonical_request.split("\n")[2]


@settings(max_examples=100, deadline=None)
@given(query=_query.filter(lambda q: all(isinstance(v, str) for _, v in q)))
def test_repeated_query_keys_sorted_like_the_sdk(query: list[tuple[str, Any]]) -> None:
    headers = {"X-Sdk-Date": "20250101T000000Z", "Host": "h"}
    doubled = query + [(k, v + "2") for k, v in query]
    ours = sign(method="GET", path="/p", query=doubled, headers=headers, body=b"", ak="A", sk="S")
    official, _ = _official("GET", "h", "/p", doubled, headers, b"", "A", "S")
    assert ours.authorization == official


def test_list_query_values_expand_like_the_sdk() -> None:
    query: list[tuple[str, Any]] = [("id", ["b", "a", "c"]), ("flag", False), ("n", 3)]
    headers = {"X-Sdk-Date": "20250101T000000Z", "Host": "h"}
    ours = sign(method="GET", path="/p", query=query, headers=headers, body=b"", ak="A", sk="S")
    official, uri = _official("GET", "h", "/p", [*query], headers, b"", "A", "S")
    assert ours.authorization == official
    assert "flag=false&id=a&id=b&id=c&n=3" in ours.canonical_request
    assert uri == "/p?flag=false&id=a&id=b&id=c&n=3"


def test_reference_vector_python_sdk() -> None:
    sig = sign(
        method="GET",
        path="/v1/record/94baa8ec-fd3f-4cae-81af-b24385a7220f/full-stages",
        query=[("cascade", True)],
        headers={
            "Host": "cloudbuild-ext.cn-north-4.myhuaweicloud.com",
            "X-Sdk-Date": "20250101T000000Z",
        },
        body=b"",
        ak="AKEXAMPLE000000000",
        sk="SKEXAMPLEsecretKEY0000000000000000000000",
    )
    assert (
        hashlib.sha256(sig.canonical_request.encode()).hexdigest()
        == "2da6365d9a4274e693aeaf0cb48c5a0fd608e412a302a56a3f808a6f57898632"
    )
    assert sig.signature == "b7864702478907f657fdfc6f658f023f32ce756166bc8615a82f16934b7a530e"
    assert sig.canonical_request.split("\n")[1].endswith("/full-stages/")
    assert sig.authorization == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE000000000, SignedHeaders=host;x-sdk-date, "
        "Signature=b7864702478907f657fdfc6f658f023f32ce756166bc8615a82f16934b7a530e"
    )


def test_reference_vector_go_sdk() -> None:
    sig = sign(
        method="GET",
        path="/path",
        query=[("limit", "1")],
        headers={"X-Sdk-Date": "20060102T150405Z"},
        body=b"",
        ak="AccessKey",
        sk="SecretKey",
    )
    assert sig.signed_headers == "x-sdk-date"
    assert sig.signature == "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"


def test_empty_body_hashes_to_the_documented_constant() -> None:
    sig = sign(
        method="GET",
        path="/",
        query=[],
        headers={"X-Sdk-Date": "20250101T000000Z"},
        body=b"",
        ak="A",
        sk="S",
    )
    assert sig.canonical_request.endswith(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    # The canonical headers' final newline leaves a blank line before the signed list.
    assert "\nx-sdk-date:20250101T000000Z\n\nx-sdk-date\n" in sig.canonical_request


def test_headers_with_underscore_are_not_signed() -> None:
    sig = sign(
        method="GET",
        path="/",
        query=[],
        headers={"X-Sdk-Date": "20250101T000000Z", "X_Custom": "1", "X-Other": " padded "},
        body=b"",
        ak="A",
        sk="S",
    )
    assert sig.signed_headers == "x-other;x-sdk-date"
    assert "\nx-other:padded\n" in sig.canonical_request


def test_sdk_date_round_trips() -> None:
    assert sdk_date(1_735_689_600) == "20250101T000000Z"
    assert parse_sdk_date("20250101T000000Z") == 1_735_689_600


def test_parse_authorization() -> None:
    parsed = parse_authorization(
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=abc"
    )
    assert parsed is not None
    assert (parsed.access, parsed.signed_headers, parsed.signature) == (
        "AK1",
        ["host", "x-sdk-date"],
        "abc",
    )
    assert parse_authorization("Bearer xyz") is None
    assert parse_authorization("SDK-HMAC-SHA256 Access=AK1") is None
