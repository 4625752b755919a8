"""Volcengine HMAC-SHA256 request signing.

Covers the official clients' vectors, tampering, the clock window, the credential scope,
Authorization parsing and the client-side signer.

Requests crafted here with unusual scopes or signed-header lists are signed by ``_reference_sign``,
an independent, deliberately plain transcription of shared/reference/signing.md, so that a
rejection comes from the check under test and not from a wrong signature.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlencode

import pytest

from convhub.dialects.volc.signing import (
    Credential,
    ParsedAuthorization,
    SignatureVerifier,
    parse_authorization,
)
from convhub.errors import ConvhubError, ErrorCode
from convhub.wire.signing import sign_request
from tests.support import SIGNING_VECTORS

VECTORS_PATH = SIGNING_VECTORS
EXPECTED_VECTOR_COUNT = 23
MINUTE = 60.0
CRAFTED_SECRET = "CraftedSecret=="


def _epoch(x_date: str) -> float:
    return datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def _x_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclasses.dataclass(frozen=True)
class Req:
    """A request as the server sees it: lower-cased headers, raw query bytes, body bytes."""

    case: str
    method: str
    query_string: bytes
    headers: Mapping[str, str]
    body: bytes
    secret_key: str
    now: float  # the injected server clock

    def with_headers(self, **changes: str | None) -> Req:
        """Replace headers; keyword names use '_' for '-'; None removes the header."""
        headers = dict(self.headers)
        for key, value in changes.items():
            name = key.replace("_", "-")
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return dataclasses.replace(self, headers=headers)

    def with_authorization(self, transform: Callable[[str], str]) -> Req:
        return self.with_headers(authorization=transform(self.headers["authorization"]))


def _load_vectors() -> tuple[list[Req], str | None]:
    if not VECTORS_PATH.is_file():
        return [], (
            f"Volcengine signing vectors not found at {VECTORS_PATH} "
            "(expected shared/vectors/volc-signed-requests.jsonl next to the repository)"
        )
    vectors: list[Req] = []
    for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        headers = {name.lower(): value for name, value in raw["headers"]}
        vectors.append(
            Req(
                case=raw["case"],
                method=raw["method"],
                query_string=raw["query"].encode(),
                headers=headers,
                body=(raw["body"] or "").encode(),
                secret_key=raw["secret_key"],
                now=_epoch(headers["x-date"]),
            )
        )
    return vectors, None


VECTORS, VECTORS_ERROR = _load_vectors()
VECTOR_IDS = [f"{i:02d}-{v.case}" for i, v in enumerate(VECTORS)]


def _verify(req: Req, verifier: SignatureVerifier | None = None) -> None:
    auth = parse_authorization(req.headers["authorization"])
    (verifier or SignatureVerifier()).verify(
        method=req.method,
        query_string=req.query_string,
        headers=req.headers,
        body=req.body,
        secret_key=req.secret_key,
        authorization=auth,
        now=req.now,
    )


def _reference_sign(
    *,
    method: str,
    query_string: bytes,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: Sequence[str],
    secret_key: str,
    date: str,
    region: str,
    service: str,
) -> str:
    """signing.md, step by step, with the standard library's obvious tools."""
    pairs = parse_qsl(query_string.decode(), keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    canonical_query = "&".join(f"{k}={v}" for k, v in encoded)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            "/",
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/request"
    string_to_sign = "\n".join(
        [
            "HMAC-SHA256",
            headers["x-date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = secret_key.encode()
    for part in (date, region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _expected_signature(req: Req) -> str | None:
    """The signature the server computes for ``req`` (None if it cannot be computed)."""
    try:
        auth = parse_authorization(req.headers["authorization"])
        return _reference_sign(
            method=req.method,
            query_string=req.query_string,
            headers=req.headers,
            body=req.body,
            signed_headers=auth.signed_headers,
            secret_key=req.secret_key,
            date=auth.credential.date,
            region=auth.credential.region,
            service=auth.credential.service,
        )
    except (ConvhubError, KeyError):
        return None


def _craft(
    *,
    x_date: str = "20261121T225609Z",
    date: str | None = None,
    region: str = "cn-north-1",
    service: str = "rtc",
    signed_headers: Sequence[str] = ("content-type", "host", "x-content-sha256", "x-date"),
    extra_headers: Mapping[str, str] | None = None,
    body: bytes = b'{"AppId": 1}',
    secret_key: str = CRAFTED_SECRET,
) -> Req:
    """A POST correctly signed by the reference signer with whatever scope/headers are asked."""
    headers = {
        "host": "127.0.0.1:8000",
        "content-type": "application/json",
        "x-date": x_date,
        "x-content-sha256": hashlib.sha256(body).hexdigest(),
        **(extra_headers or {}),
    }
    query_string = b"Action=CreateConversation&Version=2020-12-01"
    scope_date = date if date is not None else x_date[:8]
    signature = _reference_sign(
        method="POST",
        query_string=query_string,
        headers=headers,
        body=body,
        signed_headers=signed_headers,
        secret_key=secret_key,
        date=scope_date,
        region=region,
        service=service,
    )
    headers["authorization"] = (
        f"HMAC-SHA256 Credential=AKLTcrafted/{scope_date}/{region}/{service}/request, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={signature}"
    )
    return Req("crafted", "POST", query_string, headers, body, secret_key, _epoch(x_date))


def _assert_rejected(
    req: Req, code: ErrorCode, verifier: SignatureVerifier | None = None
) -> ConvhubError:
    with pytest.raises(ConvhubError) as info:
        _verify(req, verifier)
    error = info.value
    assert error.code is code, f"expected {code}, got {error!r}"
    _assert_clean_message(error, req)
    return error


def _assert_clean_message(error: ConvhubError, req: Req) -> None:
    for text in (str(error), repr(error), error.message):
        assert req.secret_key not in text, "error message leaks the secret key"
        expected = _expected_signature(req)
        if expected is not None:
            assert expected not in text, "error message leaks the expected signature"


# --- the official clients' vectors ---------------------------------------------------------------


def test_vectors_file_present() -> None:
    assert VECTORS_ERROR is None, VECTORS_ERROR
    assert len(VECTORS) == EXPECTED_VECTOR_COUNT, (
        f"{VECTORS_PATH} holds {len(VECTORS)} vectors, expected {EXPECTED_VECTOR_COUNT}"
    )


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_verifies(vector: Req) -> None:
    _verify(vector)


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_reference_signer_agrees_with_vector(vector: Req) -> None:
    """Guards the oracle used to craft requests elsewhere in this file."""
    auth = parse_authorization(vector.headers["authorization"])
    assert _expected_signature(vector) == auth.signature


@pytest.mark.parametrize(
    "vector",
    [
        v
        for v in VECTORS
        if "SignedHeaders=content-type;host;x-content-sha256;x-date," in v.headers["authorization"]
    ],
)
def test_sign_request_reproduces_official_client(vector: Req) -> None:
    auth = parse_authorization(vector.headers["authorization"])
    headers = sign_request(
        method=vector.method,
        host=vector.headers["host"],
        query=parse_qsl(vector.query_string.decode(), keep_blank_values=True),
        body=vector.body,
        access_key=auth.credential.access_key,
        secret_key=vector.secret_key,
        region=auth.credential.region,
        service=auth.credential.service,
        now=vector.now,
        content_type=vector.headers["content-type"],
    )
    for name, value in headers.items():
        assert value == vector.headers[name.lower()], name


# --- tampering -----------------------------------------------------------------------------------


def _flip_first_body_byte(req: Req) -> Req:
    body = bytes([req.body[0] ^ 0x01]) + req.body[1:] if req.body else b"x"
    return dataclasses.replace(req, body=body)


def _body_changed_hash_header_kept(req: Req) -> Req:
    return _flip_first_body_byte(req)


def _body_changed_hash_header_updated(req: Req) -> Req:
    changed = _flip_first_body_byte(req)
    return changed.with_headers(x_content_sha256=hashlib.sha256(changed.body).hexdigest())


def _query_value_changed(req: Req) -> Req:
    fields = req.query_string.split(b"&")
    fields[0] += b"X"
    return dataclasses.replace(req, query_string=b"&".join(fields))


def _query_param_added(req: Req) -> Req:
    return dataclasses.replace(req, query_string=req.query_string + b"&Extra=1")


def _query_param_removed(req: Req) -> Req:
    return dataclasses.replace(req, query_string=req.query_string.rsplit(b"&", 1)[0])


def _host_changed(req: Req) -> Req:
    host = req.headers["host"]
    return req.with_headers(host="127.0.0.1:8001" if host != "127.0.0.1:8001" else "127.0.0.1")


def _x_date_shifted_within_window(req: Req) -> Req:
    return req.with_headers(x_date=_x_date(_epoch(req.headers["x-date"]) + 1))


def _content_type_changed(req: Req) -> Req:
    return req.with_headers(content_type="text/plain")


def _sdk_request_header_changed(req: Req) -> Req:
    return req.with_headers(x_sdk_request="attempt=9; max=9")


def _method_changed(req: Req) -> Req:
    return dataclasses.replace(req, method="GET" if req.method != "GET" else "POST")


def _wrong_secret(req: Req) -> Req:
    return dataclasses.replace(req, secret_key=req.secret_key + "x")


def _secret_case_changed(req: Req) -> Req:
    return dataclasses.replace(req, secret_key=req.secret_key.swapcase())


def _replace_signature(req: Req, transform: Callable[[str], str]) -> Req:
    head, signature = req.headers["authorization"].rsplit("Signature=", 1)
    return req.with_headers(authorization=f"{head}Signature={transform(signature)}")


def _signature_digit_flipped(req: Req) -> Req:
    return _replace_signature(req, lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"))


def _signature_first_digit_flipped(req: Req) -> Req:
    return _replace_signature(req, lambda s: ("0" if s[0] != "0" else "1") + s[1:])


def _signature_shorter(req: Req) -> Req:
    return _replace_signature(req, lambda s: s[:-1])


def _signature_longer(req: Req) -> Req:
    return _replace_signature(req, lambda s: s + "0")


def _signs(name: str) -> Callable[[Req], bool]:
    return lambda req: name in parse_authorization(req.headers["authorization"]).signed_headers


def _always(req: Req) -> bool:
    return True


TAMPERS: dict[str, tuple[Callable[[Req], Req], Callable[[Req], bool]]] = {
    "body_changed_hash_header_kept": (_body_changed_hash_header_kept, _always),
    "body_changed_hash_header_updated": (_body_changed_hash_header_updated, _always),
    "query_value_changed": (_query_value_changed, _always),
    "query_param_added": (_query_param_added, _always),
    "query_param_removed": (_query_param_removed, _always),
    "host_changed": (_host_changed, _always),
    "x_date_shifted_within_window": (_x_date_shifted_within_window, _always),
    "content_type_changed": (_content_type_changed, _signs("content-type")),
    "x_sdk_request_changed": (_sdk_request_header_changed, _signs("x-sdk-request")),
    "method_changed": (_method_changed, _always),
    "wrong_secret": (_wrong_secret, _always),
    "secret_case_changed": (_secret_case_changed, _always),
    "signature_last_digit_flipped": (_signature_digit_flipped, _always),
    "signature_first_digit_flipped": (_signature_first_digit_flipped, _always),
    "signature_shorter": (_signature_shorter, _always),
    "signature_longer": (_signature_longer, _always),
}
TAMPER_CASES = [
    pytest.param(vector, name, id=f"{vector_id}-{name}")
    for vector, vector_id in zip(VECTORS, VECTOR_IDS, strict=True)
    for name, (_, applies) in TAMPERS.items()
    if applies(vector)
]


@pytest.mark.parametrize(("vector", "tamper"), TAMPER_CASES)
def test_tampered_vector_rejected(vector: Req, tamper: str) -> None:
    tampered = TAMPERS[tamper][0](vector)
    with pytest.raises(ConvhubError) as info:
        _verify(tampered)
    assert info.value.code is ErrorCode.SIGNATURE_MISMATCH, repr(info.value)
    _assert_clean_message(info.value, tampered)


def test_unsigned_header_may_change() -> None:
    vector = VECTORS[0]
    _verify(vector.with_headers(user_agent="something-else", accept="*/*"))


# --- clock ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_minutes", [16, -16, 60 * 24, -60 * 24 * 365])
def test_clock_outside_window_rejected(offset_minutes: int) -> None:
    vector = VECTORS[0]
    skewed = dataclasses.replace(vector, now=vector.now + offset_minutes * MINUTE)
    error = _assert_rejected(skewed, ErrorCode.INVALID_TIMESTAMP)
    assert vector.headers["x-date"] in error.message


@pytest.mark.parametrize("offset_seconds", [14 * MINUTE, -14 * MINUTE, 15 * MINUTE, -15 * MINUTE])
def test_clock_inside_window_accepted(offset_seconds: float) -> None:
    vector = VECTORS[0]
    _verify(dataclasses.replace(vector, now=vector.now + offset_seconds))


def test_window_is_configurable() -> None:
    vector = VECTORS[0]
    late = dataclasses.replace(vector, now=vector.now + 2 * MINUTE)
    _assert_rejected(late, ErrorCode.INVALID_TIMESTAMP, SignatureVerifier(window_seconds=60))
    _verify(late, SignatureVerifier(window_seconds=180))


@pytest.mark.parametrize(
    "x_date",
    [
        "",
        "2026-11-21T22:56:09Z",
        "20261121T225609",
        "20261121 225609Z",
        "20261121t225609z",
        "20261321T225609Z",
        "20261131T225609Z",
        "20261121T245609Z",
        "20261121T225660Z",
        "1795388169",
        "\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0661T225609Z",
        " 20261121T225609Z",
    ],
)
def test_malformed_x_date_rejected(x_date: str) -> None:
    _assert_rejected(VECTORS[0].with_headers(x_date=x_date), ErrorCode.INVALID_TIMESTAMP)


def test_missing_x_date_rejected() -> None:
    _assert_rejected(VECTORS[0].with_headers(x_date=None), ErrorCode.MISSING_AUTH)


def test_x_date_cache_does_not_leak_between_requests() -> None:
    verifier = SignatureVerifier()
    vector = VECTORS[0]
    _verify(vector, verifier)
    _assert_rejected(
        dataclasses.replace(vector, now=vector.now + 16 * MINUTE),
        ErrorCode.INVALID_TIMESTAMP,
        verifier,
    )
    _assert_rejected(vector.with_headers(x_date="bogus"), ErrorCode.INVALID_TIMESTAMP, verifier)
    _verify(vector, verifier)


# --- scope and signed headers --------------------------------------------------------------------


def test_crafted_request_accepted() -> None:
    _verify(_craft())


def test_other_configured_region_accepted() -> None:
    _verify(_craft(region="ap-southeast-1"))


def test_wrong_service_in_scope_rejected() -> None:
    error = _assert_rejected(_craft(service="iam"), ErrorCode.SERVICE_NOT_FOUND)
    assert "iam" in error.message


def test_verifier_for_other_service_rejects_vector() -> None:
    _assert_rejected(VECTORS[0], ErrorCode.SERVICE_NOT_FOUND, SignatureVerifier(service="iam"))


def test_unknown_region_rejected() -> None:
    _assert_rejected(_craft(region="us-east-1"), ErrorCode.SIGNATURE_MISMATCH)


def test_verifier_without_vector_region_rejects_vector() -> None:
    verifier = SignatureVerifier(regions=frozenset({"ap-southeast-1"}))
    _assert_rejected(VECTORS[0], ErrorCode.SIGNATURE_MISMATCH, verifier)


def test_scope_date_differing_from_x_date_rejected() -> None:
    _assert_rejected(_craft(date="20261120"), ErrorCode.SIGNATURE_MISMATCH)


def test_signed_headers_without_host_accepted() -> None:
    # What @volcengine/openapi (the official Node SDK) signs: no host, no content-type.
    req = _craft(signed_headers=("x-content-sha256", "x-date"))
    _verify(req)
    # Host is then not covered by the signature, so it may differ from what the client used.
    _verify(req.with_headers(host="example.com"))


def test_signed_headers_without_x_date_rejected() -> None:
    req = _craft(signed_headers=("content-type", "host", "x-content-sha256"))
    error = _assert_rejected(req, ErrorCode.SIGNATURE_MISMATCH)
    assert error.message == "SignedHeaders must include x-date"


def test_node_sdk_signed_headers_without_x_date_rejected() -> None:
    req = _craft(signed_headers=("x-content-sha256",))
    error = _assert_rejected(req, ErrorCode.SIGNATURE_MISMATCH)
    assert error.message == "SignedHeaders must include x-date"


def test_minimal_signed_headers_accepted() -> None:
    _verify(_craft(signed_headers=("host", "x-date")))
    _verify(_craft(signed_headers=("x-date",)))


def test_signed_host_still_verified() -> None:
    req = _craft(signed_headers=("host", "x-content-sha256", "x-date"))
    _verify(req)
    _assert_rejected(req.with_headers(host="example.com"), ErrorCode.SIGNATURE_MISMATCH)


def test_signed_header_absent_from_request_rejected() -> None:
    req = _craft(
        signed_headers=("content-type", "host", "x-date", "x-security-token"),
        extra_headers={"x-security-token": "sts-token"},
    )
    _verify(req)
    error = _assert_rejected(req.with_headers(x_security_token=None), ErrorCode.SIGNATURE_MISMATCH)
    assert "x-security-token" in error.message


def test_x_content_sha256_not_matching_body_rejected() -> None:
    # The signature covers the header as sent, so only the body-hash check can catch this.
    req = _craft(extra_headers={"x-content-sha256": hashlib.sha256(b"other").hexdigest()})
    error = _assert_rejected(req, ErrorCode.SIGNATURE_MISMATCH)
    assert "X-Content-Sha256" in error.message


def test_x_content_sha256_optional_when_unsigned() -> None:
    req = _craft(signed_headers=("content-type", "host", "x-date"))
    _verify(req.with_headers(x_content_sha256=None))


def test_header_values_are_trimmed() -> None:
    req = _craft(extra_headers={"content-type": "  application/json  "})
    _verify(req)


# --- Authorization parsing -----------------------------------------------------------------------


def test_parse_authorization_fields() -> None:
    auth = parse_authorization(
        "HMAC-SHA256 Credential=AKLTtestaccesskey/20261121/cn-north-1/rtc/request, "
        "SignedHeaders=content-type;host;x-content-sha256;x-date, "
        "Signature=6550D1B5EAE177D3A4EF1DBFCDDB5363FD0CDD52A627E21ECC206F8142EEDD14"
    )
    assert auth == ParsedAuthorization(
        credential=Credential(
            access_key="AKLTtestaccesskey", date="20261121", region="cn-north-1", service="rtc"
        ),
        signed_headers=("content-type", "host", "x-content-sha256", "x-date"),
        signature="6550d1b5eae177d3a4ef1dbfcddb5363fd0cdd52a627e21ecc206f8142eedd14",
    )


_GOOD_CREDENTIAL = "Credential=AK/20261121/cn-north-1/rtc/request"
_GOOD_SIGNED = "SignedHeaders=host;x-date"
_GOOD_SIGNATURE = "Signature=" + "a" * 64


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("garbage", id="garbage"),
        pytest.param("Bearer abc.def.ghi", id="bearer"),
        pytest.param("HMAC-SHA256", id="algorithm-only"),
        pytest.param("\x00\xff\u4e2d", id="binary"),
        pytest.param(
            f"AWS4-HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, {_GOOD_SIGNATURE}",
            id="wrong-algorithm-aws",
        ),
        pytest.param(
            f"HMAC-SHA1 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, {_GOOD_SIGNATURE}",
            id="wrong-algorithm-sha1",
        ),
        pytest.param(f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}", id="missing-signature"),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, Signature=", id="empty-signature"
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, Signature={'g' * 64}",
            id="non-hex-signature",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, Signature={'a' * 63}",
            id="short-signature",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, Signature={'a' * 65}",
            id="long-signature",
        ),
        pytest.param(f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNATURE}", id="missing-signed"),
        pytest.param(f"HMAC-SHA256 {_GOOD_SIGNED}, {_GOOD_SIGNATURE}", id="missing-credential"),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/20261121/cn-north-1/rtc, {_GOOD_SIGNED}, {_GOOD_SIGNATURE}",
            id="credential-four-parts",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/20261121/cn-north-1/rtc/aws4_request, {_GOOD_SIGNED}, "
            f"{_GOOD_SIGNATURE}",
            id="credential-wrong-terminator",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/2026-11-21/cn-north-1/rtc/request, {_GOOD_SIGNED}, "
            f"{_GOOD_SIGNATURE}",
            id="credential-bad-date",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=/20261121/cn-north-1/rtc/request, {_GOOD_SIGNED}, "
            f"{_GOOD_SIGNATURE}",
            id="credential-empty-access-key",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, SignedHeaders=Host;X-Date, {_GOOD_SIGNATURE}",
            id="signed-headers-upper-case",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, SignedHeaders=host;;x-date, {_GOOD_SIGNATURE}",
            id="signed-headers-empty-name",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, SignedHeaders=, {_GOOD_SIGNATURE}",
            id="signed-headers-empty",
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL} {_GOOD_SIGNED} {_GOOD_SIGNATURE}", id="no-commas"
        ),
        pytest.param(
            f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, {_GOOD_SIGNATURE}, Extra=1",
            id="trailing-field",
        ),
    ],
)
def test_malformed_authorization_rejected(value: str) -> None:
    # The good header's head is kept first: variants that share it meet the same rules.
    parse_authorization(f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, {_GOOD_SIGNATURE}")
    with pytest.raises(ConvhubError) as info:
        parse_authorization(value)
    assert info.value.code is ErrorCode.SIGNATURE_MISMATCH


def test_each_header_gives_its_own_signature_after_its_head_was_kept() -> None:
    head = f"HMAC-SHA256 {_GOOD_CREDENTIAL}, {_GOOD_SIGNED}, Signature="
    first = parse_authorization(head + "a" * 64)
    second = parse_authorization(head + "B" * 64 + "  ")
    assert (first.signature, second.signature) == ("a" * 64, "b" * 64)
    assert second.credential == first.credential and second.signed_headers == ("host", "x-date")
    other_key = parse_authorization(head.replace("AK/", "AK2/") + "c" * 64)
    assert other_key.credential.access_key == "AK2"


def test_parse_authorization_tolerates_spacing() -> None:
    auth = parse_authorization(
        f"  HMAC-SHA256  {_GOOD_CREDENTIAL} ,{_GOOD_SIGNED},   {_GOOD_SIGNATURE}  "
    )
    assert auth.signed_headers == ("host", "x-date")


# --- client-side signer --------------------------------------------------------------------------

ROUND_TRIP_QUERY: list[tuple[str, str]] = [
    ("Action", "CreateConversation"),
    ("Version", "2020-12-01"),
    ("Zeta", "a b"),
    ("alpha", "x~y*z+w"),
    ("Uni", "中文"),
    ("Num", "5"),
    ("Empty", ""),
    ("sp ace", "p&q=r"),
]
ROUND_TRIP_BODY = '{"Name": "会话 café ☃"}'.encode()
ROUND_TRIP_NOW = 1_795_388_169.0
ROUND_TRIP_SECRET = "RoundTripSecret/+=="


def _encode_query(query: Sequence[tuple[str, str]], style: str) -> bytes:
    if style == "quote_plus":  # what requests/httpx/urlencode send: space as '+'
        return urlencode(query).encode()
    if style == "quote":  # space as %20
        return urlencode(query, quote_via=quote).encode()
    if style == "minimal":  # only what must be escaped
        return urlencode(query, quote_via=quote, safe="~*!'()").encode()
    raise AssertionError(style)


def _signed(
    *,
    method: str = "POST",
    query: Sequence[tuple[str, str]] | Mapping[str, str] = ROUND_TRIP_QUERY,
    query_style: str = "quote_plus",
    body: bytes = ROUND_TRIP_BODY,
    host: str = "127.0.0.1:8000",
    region: str = "cn-north-1",
    service: str = "rtc",
    content_type: str = "application/json",
) -> Req:
    sent = sign_request(
        method=method,
        host=host,
        query=query,
        body=body,
        access_key="AKLTroundtrip",
        secret_key=ROUND_TRIP_SECRET,
        region=region,
        service=service,
        now=ROUND_TRIP_NOW,
        content_type=content_type,
    )
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    return Req(
        case="round-trip",
        method=method,
        query_string=_encode_query(pairs, query_style),
        headers={name.lower(): value for name, value in sent.items()},
        body=body,
        secret_key=ROUND_TRIP_SECRET,
        now=ROUND_TRIP_NOW,
    )


@pytest.mark.parametrize("query_style", ["quote_plus", "quote", "minimal"])
def test_sign_request_round_trip(query_style: str) -> None:
    _verify(_signed(query_style=query_style))


def test_sign_request_accepts_mapping() -> None:
    _verify(_signed(query=dict(ROUND_TRIP_QUERY)))


def test_sign_request_duplicate_keys_round_trip() -> None:
    query = [("Action", "X"), ("Version", "1"), ("k", "2"), ("k", "1"), ("k", "")]
    _verify(_signed(query=query))


def test_sign_request_get_without_body() -> None:
    _verify(_signed(method="GET", query=[("Action", "GetConversationMarks")], body=b""))


def test_sign_request_form_content_type() -> None:
    _verify(_signed(content_type="application/x-www-form-urlencoded", body=b"a=1&b=x+y"))


def test_sign_request_other_region_and_service() -> None:
    _verify(_signed(region="ap-southeast-1"))
    _assert_rejected(_signed(region="eu-west-1"), ErrorCode.SIGNATURE_MISMATCH)
    _assert_rejected(_signed(service="iam"), ErrorCode.SERVICE_NOT_FOUND)


def test_sign_request_headers_shape() -> None:
    sent = sign_request(
        method="post",
        host="example.com",
        query={"Action": "A", "Version": "1"},
        body=b"{}",
        access_key="AK",
        secret_key="SK",
        now=ROUND_TRIP_NOW,
    )
    assert list(sent) == ["Host", "Content-Type", "X-Date", "X-Content-Sha256", "Authorization"]
    assert sent["Host"] == "example.com"
    assert sent["Content-Type"] == "application/json"
    assert sent["X-Date"] == _x_date(ROUND_TRIP_NOW)
    assert sent["X-Content-Sha256"] == hashlib.sha256(b"{}").hexdigest()
    auth = parse_authorization(sent["Authorization"])
    assert sent["Authorization"].startswith(
        f"HMAC-SHA256 Credential=AK/{sent['X-Date'][:8]}/cn-north-1/rtc/request, "
        "SignedHeaders=content-type;host;x-content-sha256;x-date, Signature="
    )
    assert auth.signature == _reference_sign(
        method="POST",
        query_string=b"Version=1&Action=A",
        headers={name.lower(): value for name, value in sent.items()},
        body=b"{}",
        signed_headers=auth.signed_headers,
        secret_key="SK",
        date=auth.credential.date,
        region="cn-north-1",
        service="rtc",
    )


@pytest.mark.parametrize(
    "tamper",
    [
        "body_changed_hash_header_updated",
        "query_value_changed",
        "query_param_added",
        "host_changed",
        "content_type_changed",
        "wrong_secret",
        "signature_last_digit_flipped",
    ],
)
def test_sign_request_tampered_rejected(tamper: str) -> None:
    _assert_rejected(TAMPERS[tamper][0](_signed()), ErrorCode.SIGNATURE_MISMATCH)


def test_query_encoding_distinctions_are_signed() -> None:
    """'+' (a space) and '%2B' (a plus) are different values."""
    req = _signed(query=[("Action", "A"), ("v", "a+b")], query_style="quote")
    assert b"v=a%2Bb" in req.query_string
    _verify(req)
    forged = dataclasses.replace(req, query_string=req.query_string.replace(b"%2B", b"+"))
    _assert_rejected(forged, ErrorCode.SIGNATURE_MISMATCH)


def test_signing_key_cache_is_bounded() -> None:
    verifier = SignatureVerifier()
    for i in range(4100):
        req = dataclasses.replace(VECTORS[0], secret_key=f"secret-{i}")
        with pytest.raises(ConvhubError):
            _verify(req, verifier)
    assert 0 < len(verifier._key_cache) <= 4096
    _verify(VECTORS[0], verifier)
