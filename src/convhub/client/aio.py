"""``AsyncImClient``: the Volcengine IM actions over an asyncio httpx client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from convhub.client.auth import VolcAuth
from convhub.client.errors import ImError
from convhub.client.pages import Pager, Walk
from convhub.client.retries import DEFAULT_RETRIES, Retries, parse_retry_after
from convhub.client.wire import (
    DEFAULT_ENDPOINT,
    DEFAULT_REGION,
    HEADERS,
    SERVICE,
    VERSION,
    Endpoint,
    encode,
    read_result,
)

__all__ = ["AsyncImClient"]


class AsyncImClient:
    """One method per action, named after it (``CreateConversation`` ->
    ``create_conversation``), taking the request's wire fields as keyword arguments and returning
    its ``Result``; a refusal raises ``ImError``, a failure to get any answer raises httpx's
    ``TransportError``. An ``http_client`` passed in is used as it is (its own timeout applies)
    and left open by ``aclose``."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        region: str = DEFAULT_REGION,
        service: str = SERVICE,
        version: str = VERSION,
        timeout: float | None = 30.0,
        retries: Retries = DEFAULT_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._endpoint = Endpoint(endpoint, version)
        self._auth = VolcAuth(access_key, secret_key, region=region, service=service)
        self._retries = retries
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep

    async def call(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Any action by name, untyped; the typed methods all come through here."""
        url = self._endpoint.url(action)
        body = encode(request)
        retry = 0
        while True:
            response = await self._http.post(url, content=body, headers=HEADERS, auth=self._auth)
            try:
                return read_result(response)
            except ImError as error:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                wait = self._retries.delay(error, retry, retry_after)
                if wait is None:
                    raise
            await self._sleep(wait)
            retry += 1

    async def _walk(self, walk: Walk, request: Mapping[str, Any]) -> AsyncIterator[Any]:
        pager = Pager(walk, request)
        next_request: dict[str, Any] | None = pager.first
        while next_request is not None:
            result = await self.call(walk.action, next_request)
            for item in pager.items(result):
                yield item
            next_request = pager.after(result)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncImClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
