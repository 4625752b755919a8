"""The server answers its OpenAPI documents without credentials; other /openapi/ paths are
unknown paths."""

from __future__ import annotations

import httpx
import pytest

from convhub.openapi import rendered
from tests.support import LiveServer


@pytest.mark.parametrize("name", ["volcengine.json", "coze.json"])
def test_documents_are_served_as_generated(server: LiveServer, name: str) -> None:
    response = httpx.get(f"{server.base_url}/openapi/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == rendered()[name]
    head = httpx.head(f"{server.base_url}/openapi/{name}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(response.content))


@pytest.mark.parametrize("path", ["/openapi/", "/openapi/other.json", "/openapi/coze.json/"])
def test_other_paths_under_openapi_are_unknown_paths(server: LiveServer, path: str) -> None:
    response = httpx.get(f"{server.base_url}{path}")
    assert response.status_code == 404
    payload = response.json()
    assert payload["code"] == 4200
    assert payload["ResponseMetadata"]["Error"]["Code"] == "InvalidActionOrVersion"
