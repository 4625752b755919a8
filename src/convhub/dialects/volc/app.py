"""The Volcengine dialect as a raw ASGI app: ``POST /?Action=…&Version=2020-12-01``.

Order of checks: method, Action/Version, body size, signature and key, rate limit, JSON, then the
action itself. Anything that fails answers ``{ResponseMetadata: {…, Error}}`` and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from convhub.dialects.asgi import (
    Receive,
    RequestIds,
    Scope,
    Send,
    parse_json_object,
    read_body,
    respond,
)
from convhub.dialects.volc.actions import ACTIONS, VERSION
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.dialects.volc.signing import SignatureVerifier, parse_authorization
from convhub.domain.access import AccessControl, Caller
from convhub.domain.conversations import ConversationService
from convhub.domain.ports import Limiter
from convhub.errors import ConvhubError, ErrorCode

log = logging.getLogger(__name__)

SERVICE = "rtc"


class VolcDialect:
    def __init__(
        self,
        *,
        service: ConversationService,
        access: AccessControl,
        limiter: Limiter,
        verifier: SignatureVerifier,
        clock: Callable[[], float],
        max_body_bytes: int,
        region: str = "cn-north-1",
    ) -> None:
        self._service = service
        self._access = access
        self._limiter = limiter
        self._verifier = verifier
        self._clock = clock
        self._max_body = max_body_bytes
        self._region = region
        self._request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope["query_string"]
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        action = params.get("Action", "")
        version = params.get("Version", "")
        metadata: dict[str, Any] = {
            "RequestId": self._request_ids.next(),
            "Action": action,
            "Version": version,
            "Service": SERVICE,
            "Region": self._region,
        }
        try:
            result = await self._handle(scope, receive, query, action, version)
        except ConvhubError as error:
            await self._error(send, metadata, error)
            return
        except Exception:
            log.exception("unexpected error in %s", action or "request")
            await self._error(send, metadata, ConvhubError(ErrorCode.INTERNAL, "internal error"))
            return
        body = orjson.dumps({"ResponseMetadata": metadata, "Result": result})
        await respond(send, 200, body)

    async def _handle(
        self, scope: Scope, receive: Receive, query: bytes, action: str, version: str
    ) -> dict[str, Any]:
        if not action or not version:
            missing = "Action" if not action else "Version"
            raise ConvhubError(ErrorCode.MISSING_PARAMETER, f"the parameter {missing} is missing")
        handler = ACTIONS.get(action)
        if handler is None or version != VERSION:
            raise ConvhubError(
                ErrorCode.UNKNOWN_ACTION, f"Could not find operation {action} for version {version}"
            )
        if scope["method"] != "POST":
            raise ConvhubError(ErrorCode.METHOD_NOT_ALLOWED, f"{action} accepts POST only")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw = await read_body(receive, headers, self._max_body)
        caller = await self._authenticate(headers, query, raw)
        await self._limiter.acquire(caller.account_id, action)
        return await handler(self._service, caller, parse_json_object(raw))

    async def _authenticate(self, headers: dict[str, str], query: bytes, body: bytes) -> Caller:
        authorization = headers.get("authorization")
        if not authorization:
            raise ConvhubError(ErrorCode.MISSING_AUTH, "the Authorization header is missing")
        parsed = parse_authorization(authorization)
        key, account = await self._access.credentials(parsed.credential.access_key)
        self._verifier.verify(
            method="POST",
            query_string=query,
            headers=headers,
            body=body,
            secret_key=key.secret_key,
            authorization=parsed,
            now=self._clock(),
        )
        return Caller(account_id=account.id, access_key=key.access_key)

    async def _error(self, send: Send, metadata: dict[str, Any], error: ConvhubError) -> None:
        code, code_n, status = VOLC_ERRORS[error.code]
        metadata["Error"] = {"CodeN": code_n, "Code": code, "Message": error.message}
        await respond(send, status, orjson.dumps({"ResponseMetadata": metadata}))
