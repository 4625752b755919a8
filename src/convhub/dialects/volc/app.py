"""The Volcengine dialect as a raw ASGI app: ``POST /?Action=…&Version=2020-12-01``.

Order of checks: method, Action/Version, body size, signature and key, rate limit, JSON, then the
action itself. Anything that fails answers ``{ResponseMetadata: {…, Error}}`` and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from convhub.dialects.asgi import (
    RETRY_NEXT_SECOND,
    UNKNOWN_ACTION,
    Exchange,
    Receive,
    RequestIds,
    Scope,
    Send,
    header_map,
    parse_json_object,
    read_body,
    respond,
)
from convhub.dialects.volc.actions import ACTIONS, VERSION
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.dialects.volc.signing import SignatureVerifier, parse_authorization
from convhub.domain.authentication import Authenticator
from convhub.domain.cache import keep
from convhub.domain.caller import Caller
from convhub.domain.ports import Limiter
from convhub.domain.services import Services
from convhub.errors import ConvhubError, ErrorCode

log = logging.getLogger(__name__)

_STOPPED = "the server stopped before this request was finished; retry it"

SERVICE = "rtc"
_QUERIES_KEPT = 1024
_QUERY_KEPT_MAX_BYTES = 256


class VolcDialect:
    def __init__(
        self,
        *,
        services: Services,
        authenticator: Authenticator,
        limiter: Limiter,
        verifier: SignatureVerifier,
        clock: Callable[[], float],
        max_body_bytes: int,
        regions: frozenset[str] = frozenset({"cn-north-1", "ap-southeast-1"}),
        region: str = "cn-north-1",
    ) -> None:
        self._services = services
        self._authenticator = authenticator
        self._limiter = limiter
        self._verifier = verifier
        self._clock = clock
        self._max_body = max_body_bytes
        self._region = region
        self._regions = regions
        self._request_ids = RequestIds()
        # Clients send a handful of query strings (an action and the version), each many times.
        self._queries: dict[bytes, tuple[str, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Exchange:
        query = scope["query_string"]
        action, version = self._queries.get(query) or self._action_of(query)
        metadata: dict[str, Any] = {
            "RequestId": self._request_ids.next(),
            "Action": action,
            "Version": version,
            "Service": SERVICE,
            "Region": self._region,
        }
        exchange = Exchange(
            "volc", metadata["RequestId"], action if action in ACTIONS else UNKNOWN_ACTION
        )
        try:
            result = await self._handle(scope, receive, query, action, version, metadata, exchange)
        except ConvhubError as error:
            await self._error(send, metadata, error, exchange)
            return exchange
        except asyncio.CancelledError:  # shutdown's grace period ran out; nothing was written
            await self._error(
                send, metadata, ConvhubError(ErrorCode.UNAVAILABLE, _STOPPED), exchange
            )
            return exchange
        except Exception:
            log.exception("unexpected error in %s", exchange.action)
            internal = ConvhubError(ErrorCode.INTERNAL, "internal error")
            await self._error(send, metadata, internal, exchange)
            return exchange
        body = orjson.dumps({"ResponseMetadata": metadata, "Result": result})
        await respond(send, 200, body)
        return exchange

    def _action_of(self, query: bytes) -> tuple[str, str]:
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        found = params.get("Action", ""), params.get("Version", "")
        if len(query) <= _QUERY_KEPT_MAX_BYTES:
            keep(self._queries, query, found, limit=_QUERIES_KEPT)
        return found

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        query: bytes,
        action: str,
        version: str,
        metadata: dict[str, Any],
        exchange: Exchange,
    ) -> Mapping[str, Any]:
        if not action or not version:
            missing = "Action" if not action else "Version"
            raise ConvhubError(ErrorCode.MISSING_PARAMETER, f"the parameter {missing} is missing")
        declared = ACTIONS.get(action)
        if declared is None or version != VERSION:
            raise ConvhubError(
                ErrorCode.UNKNOWN_ACTION, f"Could not find operation {action} for version {version}"
            )
        if scope["method"] != "POST":
            raise ConvhubError(ErrorCode.METHOD_NOT_ALLOWED, f"{action} accepts POST only")
        headers = header_map(scope)
        raw = await read_body(receive, headers, self._max_body)
        caller = await self._authenticate(headers, query, raw, metadata)
        exchange.account = caller.account_id
        await self._limiter.acquire(caller.account_id, action)
        for shared in declared.also_counts:
            await self._limiter.acquire(caller.account_id, shared)
        return await declared.handler(self._services, caller, declared.read(parse_json_object(raw)))

    async def _authenticate(
        self, headers: dict[str, str], query: bytes, body: bytes, metadata: dict[str, Any]
    ) -> Caller:
        authorization = headers.get("authorization")
        if not authorization:
            raise ConvhubError(ErrorCode.MISSING_AUTH, "the Authorization header is missing")
        parsed = parse_authorization(authorization)
        region = parsed.credential.region
        if region in self._regions:
            metadata["Region"] = region  # answer in the region the request was signed for
        # The key's status is told only once the signature proves the caller holds its secret.
        key, account = await self._authenticator.access_key(parsed.credential.access_key)
        self._verifier.verify(
            method="POST",
            query_string=query,
            headers=headers,
            body=body,
            secret_key=key.secret_key,
            authorization=parsed,
            now=self._clock(),
        )
        return self._authenticator.key_caller(key, account)

    async def _error(
        self, send: Send, metadata: dict[str, Any], error: ConvhubError, exchange: Exchange
    ) -> None:
        code, code_n, status = VOLC_ERRORS[error.code]
        exchange.failed(error.code, status)
        metadata["Error"] = {"CodeN": code_n, "Code": code, "Message": error.message}
        headers = RETRY_NEXT_SECOND if error.code is ErrorCode.RATE_LIMITED else ()
        await respond(send, status, orjson.dumps({"ResponseMetadata": metadata}), headers)
