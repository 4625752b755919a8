"""The Coze dialect as a raw ASGI app: the ``/v1/conversation…`` endpoints that cozepy calls.

Order of checks: route, method, body size, token, permission, rate limit, JSON, then the
endpoint itself.
Success answers ``{"code": 0, "msg": "", "detail": {"logid": L}, "data": …}``; failure answers
``{"code": N, "msg": "…", "detail": {"logid": L}}`` with the HTTP status of ``COZE_ERRORS`` and
writes nothing. Every answer carries the header ``x-tt-logid: L``, where cozepy reads the log ID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from convhub.dialects.asgi import (
    RETRY_NEXT_SECOND,
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
from convhub.dialects.coze import codec
from convhub.dialects.coze.actions import Request, match
from convhub.dialects.coze.errors import COZE_ERRORS, DEFAULT_MESSAGES
from convhub.domain.authentication import Authenticator
from convhub.domain.caller import Caller
from convhub.domain.ports import Limiter
from convhub.domain.services import Services
from convhub.errors import ConvhubError, ErrorCode

log = logging.getLogger(__name__)

_STOPPED = "the server stopped before this request was finished; retry it"


class CozeDialect:
    def __init__(
        self,
        *,
        services: Services,
        authenticator: Authenticator,
        limiter: Limiter,
        max_body_bytes: int,
    ) -> None:
        self._services = services
        self._authenticator = authenticator
        self._limiter = limiter
        self._max_body = max_body_bytes
        self._log_ids = RequestIds(upper=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Exchange:
        exchange = Exchange("coze", self._log_ids.next())
        try:
            result = await self._handle(scope, receive, exchange)
        except ConvhubError as error:
            await self._error(send, exchange, error)
            return exchange
        except asyncio.CancelledError:  # shutdown's grace period ran out; nothing was written
            await self._error(send, exchange, ConvhubError(ErrorCode.UNAVAILABLE, _STOPPED))
            return exchange
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            await self._error(send, exchange, ConvhubError(ErrorCode.INTERNAL, "internal error"))
            return exchange
        log_id = exchange.request_id
        body = orjson.dumps({"code": 0, "msg": "", "detail": {"logid": log_id}, **result})
        await respond(send, 200, body, [(b"x-tt-logid", log_id.encode())])
        return exchange

    async def _handle(
        self, scope: Scope, receive: Receive, exchange: Exchange
    ) -> Mapping[str, Any]:
        path = scope["path"]
        route = match(path)
        if route is None:
            raise ConvhubError(ErrorCode.ROUTE_NOT_FOUND, f"no such endpoint: {path}")
        endpoints, captured = route
        method = scope["method"]
        endpoint = endpoints.get(method)
        if endpoint is None:
            allowed = ", ".join(sorted(endpoints))
            raise ConvhubError(
                ErrorCode.METHOD_NOT_ALLOWED, f"{path} accepts {allowed}, not {method}"
            )
        exchange.action = endpoint.operation
        headers = header_map(scope)
        raw = await read_body(receive, headers, self._max_body)
        caller = await self._authenticate(headers.get("authorization"))
        exchange.account = caller.account_id
        self._services.policy.require(caller, endpoint.permission)
        await self._limiter.acquire(caller.account_id, "coze:" + endpoint.operation)
        for shared in endpoint.also_counts:
            await self._limiter.acquire(caller.account_id, shared)
        query = endpoint.read_query(codec.parse_query(scope.get("query_string", b"")))
        body = endpoint.read_body(parse_json_object(raw) if endpoint.reads_body and raw else {})
        assert caller.app_id is not None  # a token always acts in one app
        request = Request(caller=caller, app_id=caller.app_id, path=captured)
        return await endpoint.handler(self._services, request, query, body)

    async def _authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the Authorization header is missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or token != token.strip() or " " in token:
            raise ConvhubError(
                ErrorCode.INVALID_TOKEN, "the Authorization header must be 'Bearer <token>'"
            )
        return await self._authenticator.token_caller(token)

    async def _error(self, send: Send, exchange: Exchange, error: ConvhubError) -> None:
        code, status = COZE_ERRORS[error.code]
        exchange.failed(error.code, status)
        log_id = exchange.request_id
        body = orjson.dumps(
            {
                "code": code,
                "msg": error.message or DEFAULT_MESSAGES[code],
                "detail": {"logid": log_id},
            }
        )
        headers = [(b"x-tt-logid", log_id.encode())]
        if error.code is ErrorCode.RATE_LIMITED:
            headers += RETRY_NEXT_SECOND
        await respond(send, status, body, headers)


__all__ = ["CozeDialect"]
