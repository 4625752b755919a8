"""The client's signer against the official clients' vectors: given a vector's keys, time,
method, query, headers and body, it produces the very Authorization the official client sent."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest

from convhub.client import VolcAuth
from convhub.wire.signing import parse_x_date, sign_headers
from tests.support import SIGNING_VECTORS

VECTORS_PATH = SIGNING_VECTORS
COMPUTED = {"x-date", "x-content-sha256", "authorization"}


@dataclass(frozen=True)
class Vector:
    case: str
    access_key: str
    secret_key: str
    region: str
    service: str
    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]  # as sent, less the three the signer computes
    body: bytes
    now: float
    expected: dict[str, str]  # the three computed headers, lower-case names

    @property
    def host(self) -> str:
        return next(value for name, value in self.headers if name.lower() == "host")


def _vectors() -> list[Vector]:
    vectors = []
    for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        sent = [(name, value) for name, value in raw["headers"]]
        expected = {name.lower(): value for name, value in sent if name.lower() in COMPUTED}
        now = parse_x_date(expected["x-date"])
        assert now is not None
        vectors.append(
            Vector(
                case=raw["case"],
                access_key=raw["access_key"],
                secret_key=raw["secret_key"],
                region=raw["region"],
                service=raw["service"],
                method=raw["method"],
                raw_path=raw["raw_path"],
                query=raw["query"],
                headers=[(n, v) for n, v in sent if n.lower() not in COMPUTED],
                body=(raw["body"] or "").encode(),
                now=now,
                expected=expected,
            )
        )
    return vectors


VECTORS = _vectors()
IDS = [f"{i:02d}-{v.case}" for i, v in enumerate(VECTORS)]


def test_all_vectors_are_read() -> None:
    assert len(VECTORS) == 23


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_sign_headers_reproduces_the_official_client(vector: Vector) -> None:
    added = sign_headers(
        method=vector.method,
        query_string=vector.query.encode(),
        headers=dict(vector.headers),
        body=vector.body,
        access_key=vector.access_key,
        secret_key=vector.secret_key,
        region=vector.region,
        service=vector.service,
        now=vector.now,
    )
    assert {name.lower(): value for name, value in added.items()} == vector.expected


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_the_clients_httpx_auth_reproduces_the_official_client(vector: Vector) -> None:
    request = httpx.Request(
        vector.method,
        f"http://{vector.host}{vector.raw_path}",
        headers=vector.headers,
        content=vector.body,
    )
    auth = VolcAuth(
        vector.access_key,
        vector.secret_key,
        region=vector.region,
        service=vector.service,
        clock=lambda: vector.now,
    )
    signed = next(auth.sync_auth_flow(request))
    for name, value in vector.expected.items():
        assert signed.headers[name] == value, name


def test_the_auth_signs_the_host_httpx_sends() -> None:
    """Without an explicit Host, httpx sends the URL's (no default port): that is what is signed."""
    request = httpx.Request("POST", "https://example.com:443/?Action=A&Version=1", content=b"{}")
    signed = next(VolcAuth("AK", "SK", clock=lambda: 0.0).sync_auth_flow(request))
    assert signed.headers["host"] == "example.com"
    again = sign_headers(
        method="POST", query_string=b"Action=A&Version=1", headers={"Host": "example.com"},
        body=b"{}", access_key="AK", secret_key="SK", region="cn-north-1", service="rtc", now=0.0,
    )  # fmt: skip
    assert signed.headers["authorization"] == again["Authorization"]
    assert "SignedHeaders=host;x-content-sha256;x-date," in again["Authorization"]


def test_the_auth_never_shows_the_secret() -> None:
    assert "SK-secret" not in repr(VolcAuth("AK", "SK-secret"))
