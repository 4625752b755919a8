"""One call on the wire: the request to send, and the answer read into a ``Result`` or an error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from convhub.client.errors import ImError, UnexpectedResponseError

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "HEADERS",
    "SERVICE",
    "VERSION",
    "Endpoint",
    "encode",
    "read_result",
]

DEFAULT_ENDPOINT = "https://open.volcengineapi.com"  # the Volcengine cloud
DEFAULT_REGION = "cn-north-1"
SERVICE = "rtc"  # IM is signed as part of RTC (signing.md)
VERSION = "2020-12-01"
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": f"convhub-client python-httpx/{httpx.__version__}",
}
_QUOTED = 200  # characters of an unexpected answer quoted in the error


class Endpoint:
    """Where actions are posted: ``POST {endpoint}/?Action=…&Version=…``."""

    __slots__ = ("_base", "version")

    def __init__(self, endpoint: str, version: str) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint {endpoint!r}: expected http(s)://host[:port]")
        # The signature covers the path "/" only (signing.md), so there cannot be another.
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"endpoint {endpoint!r}: expected no path, query or fragment")
        self._base = f"{parts.scheme}://{parts.netloc}/"
        self.version = version

    def url(self, action: str) -> str:
        return self._base + "?" + urlencode({"Action": action, "Version": self.version})


def encode(request: Mapping[str, Any]) -> bytes:
    """The JSON body: Python ints are written digit for digit, so int64 IDs stay exact."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def read_result(response: httpx.Response) -> dict[str, Any]:
    """The ``Result`` object of a success; raise ``ImError`` for a refusal and
    ``UnexpectedResponseError`` for anything that is not a Volcengine answer."""
    status = response.status_code
    try:
        payload = json.loads(response.content)
    except ValueError:
        raise _unexpected(response, "a body that is not JSON") from None
    metadata = payload.get("ResponseMetadata") if isinstance(payload, dict) else None
    if not isinstance(metadata, dict):
        raise _unexpected(response, "JSON without ResponseMetadata")
    request_id = metadata.get("RequestId")
    request_id = request_id if isinstance(request_id, str) else ""
    error = metadata.get("Error")
    if isinstance(error, dict) and error:
        code, code_n, message = error.get("Code"), error.get("CodeN"), error.get("Message")
        raise ImError(
            code=code if isinstance(code, str) else "",
            code_n=code_n if type(code_n) is int else 0,
            message=message if isinstance(message, str) else "",
            request_id=request_id,
            status=status,
        )
    if not 200 <= status < 300:
        raise _unexpected(response, "a failure without ResponseMetadata.Error", request_id)
    result = payload.get("Result")
    if not isinstance(result, dict):
        raise _unexpected(response, "no Result object", request_id)
    return result


def _unexpected(
    response: httpx.Response, what: str, request_id: str = ""
) -> UnexpectedResponseError:
    text = response.content[:_QUOTED].decode("utf-8", "replace")
    more = "…" if len(response.content) > _QUOTED else ""
    return UnexpectedResponseError(
        f"{response.request.method} {response.request.url} answered HTTP "
        f"{response.status_code} with {what}: {text!r}{more}",
        status=response.status_code,
        request_id=request_id,
    )
