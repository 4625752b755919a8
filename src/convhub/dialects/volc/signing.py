"""Volcengine OpenAPI request signing (HMAC-SHA256, "V4"): server-side verifier, client-side signer.

The algorithm is the one in ``shared/reference/signing.md``; both sides share the private
canonicalisation helpers below, so what :func:`sign_request` produces is exactly what
:class:`SignatureVerifier` recomputes.

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
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from convhub.errors import ConvhubError, ErrorCode

__all__ = [
    "ALGORITHM",
    "Credential",
    "ParsedAuthorization",
    "SignatureVerifier",
    "parse_authorization",
    "sign_request",
]

ALGORITHM = "HMAC-SHA256"
_SCOPE_TERMINATOR = "request"
_CANONICAL_PATH = "/"
_QUOTE_SAFE = "-_.~"  # RFC 3986 unreserved characters besides ASCII letters and digits
_CLIENT_SIGNED_HEADERS = "content-type;host;x-content-sha256;x-date"
_CACHE_MAX_ENTRIES = 4096
_QUERY_CACHE_MAX_KEY_LEN = 512  # longer query strings are canonicalised but not cached

_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9a-z-]+"  # a lower-case HTTP header name (RFC 9110 token)
_AUTHORIZATION_RE = re.compile(
    r"HMAC-SHA256\s+"
    r"Credential=([^/\s,]+)/([0-9]{8})/([^/\s,]+)/([^/\s,]+)/request\s*,\s*"
    rf"SignedHeaders=({_HEADER_NAME}(?:;{_HEADER_NAME})*)\s*,\s*"
    r"Signature=([0-9a-fA-F]{64})",
    re.ASCII,
)
_X_DATE_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z", re.ASCII)
_X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


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


def parse_authorization(value: str) -> ParsedAuthorization:
    """Parse ``HMAC-SHA256 Credential=AK/date/region/service/request, SignedHeaders=..,
    Signature=..``; raise ``ConvhubError(SIGNATURE_MISMATCH)`` when it is malformed."""
    match = _AUTHORIZATION_RE.fullmatch(value.strip())
    if match is None:
        raise _mismatch(
            "malformed Authorization header: expected 'HMAC-SHA256 Credential=<AK>/<YYYYMMDD>/"
            "<region>/<service>/request, SignedHeaders=<h1;h2;...>, Signature=<64 hex digits>' "
            "with lower-case header names"
        )
    access_key, date, region, service, signed, signature = match.groups()
    return ParsedAuthorization(
        credential=Credential(access_key=access_key, date=date, region=region, service=service),
        signed_headers=tuple(signed.split(";")),
        signature=signature.lower(),
    )


# --- canonicalisation shared by the verifier and the signer -------------------------------------


def _form_pairs(query_string: bytes) -> list[tuple[bytes, bytes]]:
    """Split a raw query string with HTML-form rules (``+`` is a space, percent-decoding,
    blank values kept, empty fields skipped), as ``urllib.parse.parse_qsl(...,
    keep_blank_values=True)`` does, but on bytes so that no charset guess is involved."""
    pairs: list[tuple[bytes, bytes]] = []
    for field in query_string.split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        pairs.append(
            (
                unquote_to_bytes(name.replace(b"+", b" ")),
                unquote_to_bytes(value.replace(b"+", b" ")),
            )
        )
    return pairs


def _canonical_query(pairs: Iterable[tuple[bytes, bytes]]) -> str:
    """Re-encode each decoded key and value keeping only RFC 3986 unreserved characters (a space
    becomes ``%20``), sort by (key, value) and join ``k=v`` with ``&``."""
    encoded = sorted(
        (quote_from_bytes(key, _QUOTE_SAFE), quote_from_bytes(value, _QUOTE_SAFE))
        for key, value in pairs
    )
    return "&".join([f"{key}={value}" for key, value in encoded])


def _canonical_headers(items: Iterable[tuple[str, str]]) -> str:
    """``name:value\\n`` for each signed header (names already lower-case), value trimmed."""
    return "".join([f"{name}:{value.strip()}\n" for name, value in items])


def _scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/{_SCOPE_TERMINATOR}"


def _string_to_sign(
    *,
    method: str,
    canonical_query: str,
    canonical_headers: str,
    signed_headers: str,
    body_sha256: str,
    x_date: str,
    scope: str,
) -> bytes:
    # canonical_headers ends in "\n", so a blank line stands before the signed-header list.
    canonical_request = "\n".join(
        (method, _CANONICAL_PATH, canonical_query, canonical_headers, signed_headers, body_sha256)
    )
    request_hash = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{ALGORITHM}\n{x_date}\n{scope}\n{request_hash}".encode()


def _derive_signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = hmac.digest(secret_key.encode(), date.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, _SCOPE_TERMINATOR.encode(), "sha256")


def _signature(signing_key: bytes, string_to_sign: bytes) -> str:
    return hmac.digest(signing_key, string_to_sign, "sha256").hex()


def _parse_x_date(value: str) -> float | None:
    """Unix seconds of a compact UTC ``YYYYMMDDTHHMMSSZ`` timestamp, or None when malformed."""
    match = _X_DATE_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:  # month 13, 30 February, hour 24, ...
        return None


# --- server side ---------------------------------------------------------------------------------


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
            parsed = _parse_x_date(x_date)
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

        string_to_sign = _string_to_sign(
            method=method,
            canonical_query=self._canonical_query(query_string),
            canonical_headers=_canonical_headers(signed_items),
            signed_headers=";".join(signed_headers),
            body_sha256=body_sha256,
            x_date=x_date,
            scope=_scope(credential.date, credential.region, credential.service),
        )
        expected = _signature(self._signing_key(secret_key, credential), string_to_sign)
        if not hmac.compare_digest(expected, authorization.signature):
            raise _mismatch("the request signature does not match")

    def _canonical_query(self, query_string: bytes) -> str:
        cached = self._query_cache.get(query_string)
        if cached is not None:
            return cached
        canonical = _canonical_query(_form_pairs(query_string))
        if len(query_string) <= _QUERY_CACHE_MAX_KEY_LEN:
            if len(self._query_cache) >= _CACHE_MAX_ENTRIES:
                self._query_cache.clear()
            self._query_cache[query_string] = canonical
        return canonical

    def _signing_key(self, secret_key: str, credential: Credential) -> bytes:
        cache_key = (secret_key, credential.date, credential.region, credential.service)
        key = self._key_cache.get(cache_key)
        if key is None:
            key = _derive_signing_key(secret_key, *cache_key[1:])
            if len(self._key_cache) >= _CACHE_MAX_ENTRIES:
                self._key_cache.clear()
            self._key_cache[cache_key] = key
        return key


# --- client side ---------------------------------------------------------------------------------


def sign_request(
    *,
    method: str,
    host: str,
    query: Mapping[str, str] | Sequence[tuple[str, str]],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str = "cn-north-1",
    service: str = "rtc",
    now: float,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers to send with a request, signed like volc-sdk-python's ``Service.json()``:
    ``content-type;host;x-content-sha256;x-date``.

    ``query`` holds the decoded parameters (Action and Version included); send them with any
    correct encoding (e.g. ``urllib.parse.urlencode``). ``host`` is signed and sent as given
    (official clients drop a default ``:80``/``:443`` port before signing).
    """
    x_date = time.strftime(_X_DATE_FORMAT, time.gmtime(now))
    date = x_date[:8]
    body_sha256 = hashlib.sha256(body).hexdigest()
    items = query.items() if isinstance(query, Mapping) else query
    scope = _scope(date, region, service)
    string_to_sign = _string_to_sign(
        method=method.upper(),
        canonical_query=_canonical_query([(key.encode(), value.encode()) for key, value in items]),
        canonical_headers=_canonical_headers(
            (
                ("content-type", content_type),
                ("host", host),
                ("x-content-sha256", body_sha256),
                ("x-date", x_date),
            )
        ),
        signed_headers=_CLIENT_SIGNED_HEADERS,
        body_sha256=body_sha256,
        x_date=x_date,
        scope=scope,
    )
    signature = _signature(_derive_signing_key(secret_key, date, region, service), string_to_sign)
    return {
        "Host": host,
        "Content-Type": content_type,
        "X-Date": x_date,
        "X-Content-Sha256": body_sha256,
        "Authorization": (
            f"{ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={_CLIENT_SIGNED_HEADERS}, Signature={signature}"
        ),
    }
