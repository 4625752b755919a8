"""The Coze dialect as a raw ASGI app: the ``/v1/conversation…`` endpoints that cozepy calls.

Order of checks: route, method, body size, token, rate limit, JSON, then the endpoint itself.
Success answers ``{"code": 0, "msg": "", "detail": {"logid": L}, "data": …}``; failure answers
``{"code": N, "msg": "…", "detail": {"logid": L}}`` with the HTTP status of ``COZE_ERRORS`` and
writes nothing. Every answer carries the header ``x-tt-logid: L``, where cozepy reads the log ID.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from convhub.dialects.coze import codec
from convhub.dialects.coze.actions import Request, Services, match
from convhub.dialects.coze.codec import Body
from convhub.dialects.coze.errors import COZE_ERRORS, DEFAULT_MESSAGES
from convhub.domain.access import AccessControl, Caller
from convhub.domain.conversations import ConversationService
from convhub.domain.messages import MessageService
from convhub.domain.ports import Limiter
from convhub.errors import ConvhubError, ErrorCode

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


class _LogIds:
    """``YYYYMMDDhhmmss`` + 6 hex of process + 12 hex of counter, upper case like Coze's logid:
    unique, cheap, sortable."""

    def __init__(self) -> None:
        self._prefix = os.urandom(3).hex().upper()
        self._counter = itertools.count()
        self._second = -1
        self._stamp = ""

    def next(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        return f"{self._stamp}{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012X}"


class CozeDialect:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        messages: MessageService,
        access: AccessControl,
        limiter: Limiter,
        max_body_bytes: int,
    ) -> None:
        self._services = Services(conversations=conversations, messages=messages)
        self._access = access
        self._limiter = limiter
        self._max_body = max_body_bytes
        self._log_ids = _LogIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log_id = self._log_ids.next()
        try:
            result = await self._handle(scope, receive)
        except ConvhubError as error:
            await self._error(send, log_id, error)
            return
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            await self._error(send, log_id, ConvhubError(ErrorCode.INTERNAL, "internal error"))
            return
        body = orjson.dumps({"code": 0, "msg": "", "detail": {"logid": log_id}, **result})
        await _respond(send, 200, body, log_id)

    async def _handle(self, scope: Scope, receive: Receive) -> Body:
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
        headers: dict[str, str] = {}
        authorizations = 0
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            if name == "authorization":
                authorizations += 1
            headers[name] = value.decode("latin-1")
        raw = await _read_body(receive, headers, self._max_body)
        if authorizations > 1:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "more than one Authorization header")
        caller = await self._authenticate(headers.get("authorization"))
        await self._limiter.acquire(caller.account_id, "coze:" + endpoint.operation)
        query = codec.parse_query(scope.get("query_string", b""))
        body = _parse_json(raw) if endpoint.reads_body and raw else {}
        request = Request(caller=caller, path=captured, query=query, body=body)
        return await endpoint.handler(self._services, request)

    async def _authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the Authorization header is missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or token != token.strip() or " " in token:
            raise ConvhubError(
                ErrorCode.INVALID_TOKEN, "the Authorization header must be 'Bearer <token>'"
            )
        return await self._access.token_caller(token)

    async def _error(self, send: Send, log_id: str, error: ConvhubError) -> None:
        code, status = COZE_ERRORS[error.code]
        body = orjson.dumps(
            {
                "code": code,
                "msg": error.message or DEFAULT_MESSAGES[code],
                "detail": {"logid": log_id},
            }
        )
        await _respond(send, status, body, log_id)


async def _respond(send: Send, status: int, body: bytes, log_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                _JSON,
                (b"content-length", str(len(body)).encode()),
                (b"x-tt-logid", log_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ConvhubError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConvhubError(ErrorCode.INVALID_PARAM, "the client went away mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ConvhubError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse_json(raw: bytes) -> Body:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _parse_json_slowly(raw)
    if type(body) is not dict:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "the body must be a JSON object")
    return body


def _parse_json_slowly(raw: bytes) -> Any:
    # orjson refuses some valid JSON (nesting past its limit, lone surrogate escapes, integers
    # past 64 bits); the standard parser tells those apart from a body that is not JSON at all.
    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(raw, parse_constant=refuse)
    except RecursionError:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "the body nests too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ConvhubError(ErrorCode.MALFORMED_JSON, "the body is not valid JSON") from None
    raise ConvhubError(
        ErrorCode.INVALID_PARAM, "the body holds a value that cannot be read (nesting or escapes)"
    )


__all__ = ["CozeDialect"]
