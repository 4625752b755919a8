"""Volcengine OpenAPI request signing (HMAC-SHA256, "V4"): the server's verifier.

The algorithm itself lives in ``convhub.wire.signing``, which the client signs with too; this
module holds the server's policy around it: what an ``Authorization`` header may look like, the
clock window, the regions and service served, and caches.

Server flow (the caller owns the key lookup)::

    auth = parse_authorization(headers["authorization"])      # ConvhubError on malformed input
    secret = lookup(auth.credential.access_key)                # unknown key: the caller's concern
    verifier.verify(method=..., query_string=..., headers=..., body=..., secret_key=secret,
                    authorization=auth, now=clock())

Error messages never contain the secret key nor the signature the server expected.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from convhub.domain.cache import keep
from convhub.errors import ConvhubError, ErrorCode
from convhub.wire.signing import (
    canonical_headers,
    canonical_query,
    credential_scope,
    derive_signing_key,
    form_pairs,
    parse_x_date,
    signature,
    string_to_sign,
)

__all__ = [
    "Credential",
    "ParsedAuthorization",
    "SignatureVerifier",
    "parse_authorization",
]

_CACHE_MAX_ENTRIES = 4096
_QUERY_CACHE_MAX_KEY_LEN = 512  # longer query strings are canonicalised but not cached
_HEAD_MAX_LEN = 512  # longer Authorization headers are parsed but not kept

_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9a-z-]+"  # a lower-case HTTP header name (RFC 9110 token)
_AUTHORIZATION_RE = re.compile(
    r"HMAC-SHA256\s+"
    r"Credential=([^/\s,]+)/([0-9]{8})/([^/\s,]+)/([^/\s,]+)/request\s*,\s*"
    rf"SignedHeaders=({_HEADER_NAME}(?:;{_HEADER_NAME})*)\s*,\s*"
    r"Signature=([0-9a-fA-F]{64})",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    date: str  # YYYYMMDD from the scope
    region: str
    service: str


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str  # 64 lower-case hex digits


def _mismatch(message: str) -> ConvhubError:
    return ConvhubError(ErrorCode.SIGNATURE_MISMATCH, message)


_SIGNATURE = "Signature="
_HEX_64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# Everything before the signature, of headers that parsed: a client sends the same one for
# each request of a day (its key, scope and signed headers), and only the signature changes.
_heads: dict[str, tuple[Credential, tuple[str, ...]]] = {}


def parse_authorization(value: str) -> ParsedAuthorization:
    """Parse ``HMAC-SHA256 Credential=AK/date/region/service/request, SignedHeaders=..,
    Signature=..``; raise ``ConvhubError(SIGNATURE_MISMATCH)`` when it is malformed."""
    value = value.strip()
    head, _, signature = value.rpartition(_SIGNATURE)
    known = _heads.get(head)
    if known is not None and _HEX_64.fullmatch(signature) is not None:
        return ParsedAuthorization(known[0], known[1], signature.lower())
    match = _AUTHORIZATION_RE.fullmatch(value)
    if match is None:
        raise _mismatch(
            "malformed Authorization header: expected 'HMAC-SHA256 Credential=<AK>/<YYYYMMDD>/"
            "<region>/<service>/request, SignedHeaders=<h1;h2;...>, Signature=<64 hex digits>' "
            "with lower-case header names"
        )
    access_key, date, region, service, signed, signature = match.groups()
    credential = Credential(access_key=access_key, date=date, region=region, service=service)
    signed_headers = tuple(signed.split(";"))
    if len(head) <= _HEAD_MAX_LEN:
        keep(_heads, head, (credential, signed_headers), limit=_CACHE_MAX_ENTRIES)
    return ParsedAuthorization(credential, signed_headers, signature.lower())


class SignatureVerifier:
    """Checks a parsed ``Authorization`` against the request it came with.

    Thread-safe enough for CPython: the caches are plain dicts whose single operations are atomic,
    and losing an entry only costs a recomputation.
    """

    __slots__ = ("_key_cache", "_last_x_date", "_query_cache", "_regions", "_service", "_window")

    def __init__(
        self,
        *,
        service: str = "rtc",
        regions: frozenset[str] = frozenset({"cn-north-1", "ap-southeast-1"}),
        window_seconds: int = 900,
    ) -> None:
        self._service = service
        self._regions = regions
        self._window = window_seconds
        self._key_cache: dict[tuple[str, str, str, str], bytes] = {}
        self._query_cache: dict[bytes, str] = {}
        self._last_x_date: tuple[str, float] = ("", 0.0)

    def verify(
        self,
        *,
        method: str,
        query_string: bytes,
        headers: Mapping[str, str],
        body: bytes,
        secret_key: str,
        authorization: ParsedAuthorization,
        now: float,
    ) -> None:
        """Return None when the request is authentic, else raise ``ConvhubError``.

        ``headers`` maps lower-cased names to values; ``query_string`` is the raw query (ASGI
        ``scope["query_string"]``); ``now`` is the server clock in unix seconds.
        """
        x_date = headers.get("x-date")
        if x_date is None:
            raise ConvhubError(ErrorCode.MISSING_AUTH, "missing X-Date header")
        last = self._last_x_date
        if last[0] == x_date:
            timestamp = last[1]
        else:
            parsed = parse_x_date(x_date)
            if parsed is None:
                raise ConvhubError(
                    ErrorCode.INVALID_TIMESTAMP,
                    "malformed X-Date header: expected UTC time as YYYYMMDDTHHMMSSZ",
                )
            timestamp = parsed
            self._last_x_date = (x_date, parsed)
        if abs(now - timestamp) > self._window:
            raise ConvhubError(
                ErrorCode.INVALID_TIMESTAMP,
                f"X-Date {x_date} is more than {self._window} seconds away from the server time",
            )

        credential = authorization.credential
        if credential.service != self._service:
            raise ConvhubError(
                ErrorCode.SERVICE_NOT_FOUND,
                f"service {credential.service!r} in the credential scope is not served here "
                f"(expected {self._service!r})",
            )
        if credential.region not in self._regions:
            raise _mismatch(
                f"region {credential.region!r} in the credential scope is not supported"
            )
        if credential.date != x_date[:8]:
            raise _mismatch("the date in the credential scope does not match X-Date")
        signed_headers = authorization.signed_headers
        # x-date must be signed; host need not be (the Node SDK @volcengine/openapi signs only
        # x-content-sha256;x-date), and is checked like any other header when it is signed.
        if "x-date" not in signed_headers:
            raise _mismatch("SignedHeaders must include x-date")

        body_sha256 = hashlib.sha256(body).hexdigest()
        claimed_sha256 = headers.get("x-content-sha256")
        if claimed_sha256 is not None and claimed_sha256.strip().lower() != body_sha256:
            raise _mismatch("X-Content-Sha256 does not match the SHA-256 of the request body")

        signed_items: list[tuple[str, str]] = []
        for name in signed_headers:
            value = headers.get(name)
            if value is None:
                raise _mismatch(f"signed header {name!r} is missing from the request")
            signed_items.append((name, value))

        to_sign = string_to_sign(
            method=method,
            canonical_query=self._canonical_query(query_string),
            canonical_headers=canonical_headers(signed_items),
            signed_headers=";".join(signed_headers),
            body_sha256=body_sha256,
            x_date=x_date,
            scope=credential_scope(credential.date, credential.region, credential.service),
        )
        expected = signature(self._signing_key(secret_key, credential), to_sign)
        if not hmac.compare_digest(expected, authorization.signature):
            raise _mismatch("the request signature does not match")

    def _canonical_query(self, query_string: bytes) -> str:
        cached = self._query_cache.get(query_string)
        if cached is not None:
            return cached
        canonical = canonical_query(form_pairs(query_string))
        if len(query_string) <= _QUERY_CACHE_MAX_KEY_LEN:
            keep(self._query_cache, query_string, canonical, limit=_CACHE_MAX_ENTRIES)
        return canonical

    def _signing_key(self, secret_key: str, credential: Credential) -> bytes:
        cache_key = (secret_key, credential.date, credential.region, credential.service)
        key = self._key_cache.get(cache_key)
        if key is None:
            key = derive_signing_key(secret_key, *cache_key[1:])
            keep(self._key_cache, cache_key, key, limit=_CACHE_MAX_ENTRIES)
        return key
