"""Signs each request as it leaves httpx, with the algorithm the server verifies."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from convhub.wire.signing import sign_headers

__all__ = ["VolcAuth"]


class VolcAuth(httpx.Auth):
    """Volcengine ``HMAC-SHA256`` signing as an httpx ``Auth``: it signs the request exactly as
    it will be sent (raw query, ``Host``, ``Content-Type``, every ``X-*`` header, the body)."""

    requires_request_body = True

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        region: str = "cn-north-1",
        service: str = "rtc",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._service = service
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            sign_headers(
                method=request.method,
                query_string=request.url.query,
                headers=request.headers,
                body=request.content,
                access_key=self._access_key,
                secret_key=self._secret_key,
                region=self._region,
                service=self._service,
                now=self._clock(),
            )
        )
        yield request

    def __repr__(self) -> str:  # never the secret key
        return f"VolcAuth(access_key={self._access_key!r}, region={self._region!r})"
