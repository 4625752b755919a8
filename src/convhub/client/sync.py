"""``ImClient``: the Volcengine IM actions over a blocking httpx client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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

__all__ = ["ImClient"]


class ImClient:
    """One method per action, named after it (``CreateConversation`` ->
    ``create_conversation``), taking the request's wire fields as keyword arguments and returning
    its ``Result``; a refusal raises ``ImError``, a failure to get any answer raises httpx's
    ``TransportError``. An ``http_client`` passed in is used as it is (its own timeout applies)
    and left open by ``close``."""

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
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint = Endpoint(endpoint, version)
        self._auth = VolcAuth(access_key, secret_key, region=region, service=service)
        self._retries = retries
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep

    def call(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Any action by name, untyped; the typed methods all come through here."""
        url = self._endpoint.url(action)
        body = encode(request)
        retry = 0
        while True:
            response = self._http.post(url, content=body, headers=HEADERS, auth=self._auth)
            try:
                return read_result(response)
            except ImError as error:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                wait = self._retries.delay(error, retry, retry_after)
                if wait is None:
                    raise
            self._sleep(wait)
            retry += 1

    def _walk(self, walk: Walk, request: Mapping[str, Any]) -> Iterator[Any]:
        pager = Pager(walk, request)
        next_request: dict[str, Any] | None = pager.first
        while next_request is not None:
            result = self.call(walk.action, next_request)
            yield from pager.items(result)
            next_request = pager.after(result)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ImClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
