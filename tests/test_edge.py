"""The HTTP edge of ``convhub serve``: malformed HTTP, paths of neither dialect and odd methods are
answered in JSON envelopes, over raw sockets to a real server process (convhub.edge)."""

from __future__ import annotations

import json
import re
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from volcengine.ApiInfo import ApiInfo
from volcengine.base.Service import Service
from volcengine.Credentials import Credentials
from volcengine.ServiceInfo import ServiceInfo

from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.errors import ErrorCode
from convhub.store.tables import conversations
from tests.e2e.test_volc_sdks import Served, convhub_serve
from tests.support import VERSION, Tenant, signed_headers

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (see tests/e2e/test_cozepy.py)

    warnings.simplefilter("ignore", DeprecationWarning)
    from cozepy import Coze, CozeAPIError, SyncHTTPClient, TokenAuth

CREATE = {"Action": "CreateConversation", "Version": VERSION}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class Edge:
    served: Served
    database_url: str
    port: int
    app_id: int
    access_key: str
    secret_key: str
    token: str


def _printed(served: Served, name: str) -> str | None:
    found = re.search(rf"^\s*{name}\s+(\S+)\s*$", served.output(), re.MULTILINE)
    return None if found is None else found.group(1)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """One ``convhub serve`` on a fresh SQLite file; its first start prints the credentials."""
    workdir = Path(tmp_path_factory.mktemp("edge"))
    url = f"sqlite:///{workdir / 'convhub.db'}"
    args = ["--database-url", url, "--no-access-log"]
    with convhub_serve(args, workdir, ready=lambda s: _printed(s, "Token") is not None) as served:
        printed = {n: _printed(served, n) for n in ("AppId", "AccessKey", "SecretKey", "Token")}
        assert all(printed.values()), served.output()
        port = int(served.host.rsplit(":", 1)[1])
        yield Edge(served, url, port, int(str(printed["AppId"])), str(printed["AccessKey"]),
                   str(printed["SecretKey"]), str(printed["Token"]))  # fmt: skip
    assert "Traceback" not in served.log(), served.log()


def exchange(port: int, raw: bytes) -> Answer:
    """Send ``raw`` on a new connection; read one answer (to its Content-Length, or to EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while True:
            head, separator, body = data.partition(b"\r\n\r\n")
            if separator:
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    assert name.lower() not in headers, f"{name} twice in {head!r}"
                    headers[name.lower()] = value.strip()
                size = int(headers["content-length"])
                head_only = raw.startswith(b"HEAD ")
                if head_only or len(body) >= size:
                    status = int(lines[0].split(" ")[1])
                    assert lines[0].startswith("HTTP/1.1 "), lines[0]
                    return Answer(status, headers, body if head_only else body[:size])
            chunk = conn.recv(65536)
            assert chunk, f"the server closed the connection after {data!r}"
            data += chunk


def assert_edge_envelope(answer: Answer, status: int, volc: str, code_n: int, coze: int) -> None:
    """The envelope both clients read: Volcengine's ResponseMetadata.Error, Coze's code, msg and
    logid."""
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json", answer
    payload = answer.json()
    metadata = payload["ResponseMetadata"]
    assert metadata["Error"]["Code"] == volc, payload
    assert metadata["Error"]["CodeN"] == code_n, payload
    assert metadata["Error"]["Message"], payload
    assert metadata["Service"] == "rtc" and metadata["Region"] == "cn-north-1", payload
    assert "Result" not in payload and "data" not in payload, payload
    assert payload["code"] == coze and payload["msg"], payload
    log_id = payload["detail"]["logid"]
    assert log_id == metadata["RequestId"] == answer.headers["x-tt-logid"], payload
    assert re.fullmatch(r"\d{14}[0-9A-F]{18}", log_id), log_id


MALFORMED = {
    "bare CR in a header": b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "bare LF ending a header": b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare LF inside a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n",
    "LF line endings throughout": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "NUL in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n",
    "duplicate Content-Length, same value": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
    ),
    "duplicate Content-Length, different values": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
    "negative Content-Length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
    "non-numeric Content-Length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\n{}",
    "Content-Length and chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "method FOO": b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/9.9": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "request line of one word": b"GARBAGE\r\n\r\n",
    "request line of four parts": b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "request target not a path": b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "space inside the request target": b"GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n",
    "folded header line": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "space before a header's colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "a byte above 0x7f in the path": b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_http_is_answered_in_the_edge_envelope(edge: Edge, raw: bytes) -> None:
    answer = exchange(edge.port, raw)
    assert_edge_envelope(answer, 400, "InvalidParam", 1000004, 4000)
    assert answer.headers["connection"] == "close"
    assert int(answer.headers["content-length"]) == len(answer.body)
    # and the server serves on
    assert exchange(edge.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/foo", "/v2/x", "/v1", "/V1/conversations", "//", "/healthz/"])
def test_a_path_of_neither_dialect_is_404_in_the_edge_envelope(
    edge: Edge, path: str, method: str
) -> None:
    answer = exchange(edge.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert_edge_envelope(answer, 404, "InvalidActionOrVersion", 100008, 4200)
    assert path in answer.json()["msg"]


@pytest.mark.parametrize("path", ["/v1/nosuch", "/v1/", "/v1/conversations/1/nosuch"])
def test_an_unknown_path_under_v1_is_the_coze_404(edge: Edge, path: str) -> None:
    answer = exchange(edge.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/json"
    payload = answer.json()
    assert payload["code"] == 4200 and payload["msg"], payload
    assert payload["detail"]["logid"] == answer.headers["x-tt-logid"]


UPGRADE = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def test_a_websocket_upgrade_is_answered_as_plain_http(edge: Edge) -> None:
    """convhub has no WebSockets: an upgrade request is answered like any request to its path
    (uvicorn's own answer would be a plain-text 500)."""
    answer = exchange(edge.port, f"GET /foo HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n".encode())
    assert_edge_envelope(answer, 404, "InvalidActionOrVersion", 100008, 4200)
    answer = exchange(edge.port, f"GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n".encode())
    assert (answer.status, answer.headers["content-type"]) == (400, "application/json")
    assert answer.json()["ResponseMetadata"]["Error"]["Code"] == "MissingParameter"
    answer = exchange(edge.port, f"GET /v1/x HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n".encode())
    assert (answer.status, answer.json()["code"]) == (404, 4200)


def test_head_answers_the_envelope_headers_without_a_body(edge: Edge) -> None:
    get = exchange(edge.port, b"GET /foo HTTP/1.1\r\nHost: x\r\n\r\n")
    head = exchange(edge.port, b"HEAD /foo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (head.status, head.headers["content-type"], head.body) == (404, "application/json", b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    action = b"HEAD /?Action=CreateConversation&Version=2020-12-01 HTTP/1.1\r\nHost: x\r\n\r\n"
    head = exchange(edge.port, action)
    assert (head.status, head.headers["content-type"], head.body) == (405, "application/json", b"")


@pytest.mark.parametrize(
    ("request_line", "status", "code"),
    [
        ("OPTIONS /?Action=CreateConversation&Version=2020-12-01", 405, "MethodNotAllowed"),
        ("GET /?Action=CreateConversation&Version=2020-12-01", 405, "MethodNotAllowed"),
        ("OPTIONS /", 400, "MissingParameter"),
        ("OPTIONS /?Action=NoSuchAction&Version=2020-12-01", 404, "InvalidActionOrVersion"),
    ],
)
def test_odd_methods_on_the_volcengine_path_answer_its_envelope(
    edge: Edge, request_line: str, status: int, code: str
) -> None:
    answer = exchange(edge.port, f"{request_line} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (answer.status, answer.headers["content-type"]) == (status, "application/json")
    payload = answer.json()
    assert payload["ResponseMetadata"]["Error"]["Code"] == code and "Result" not in payload


def test_odd_methods_on_a_coze_path_answer_its_envelope(edge: Edge) -> None:
    answer = exchange(edge.port, b"OPTIONS /v1/conversations HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (answer.status, answer.headers["content-type"]) == (405, "application/json")
    assert answer.json()["code"] == 4000


def _count(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(conversations)).one()[0])
    finally:
        engine.dispose()


def test_two_authorization_headers_are_refused_by_both_dialects(edge: Edge) -> None:
    """One rule at the edge of both dialects: a second Authorization header is refused, even when
    both are valid and either alone would be served."""
    tenant = Tenant("default", edge.app_id, edge.access_key, edge.secret_key)
    body = json.dumps({"AppId": edge.app_id, "OwnerUserId": 1,
                       "ConversationCoreInfo": {"ConversationType": 2}}).encode()  # fmt: skip
    before = _count(edge.database_url)

    def volc(authorizations: int) -> Answer:
        headers = signed_headers(tenant, edge.served.host, CREATE, body)
        lines = [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
        lines += [f"Authorization: {headers['Authorization']}"] * (authorizations - 1)
        head = "\r\n".join(
            [f"POST /?Action=CreateConversation&Version={VERSION} HTTP/1.1",
             f"Host: {edge.served.host}", f"Content-Length: {len(body)}", *lines]
        )  # fmt: skip
        return exchange(edge.port, head.encode() + b"\r\n\r\n" + body)

    def coze(authorizations: int) -> Answer:
        head = "\r\n".join(
            ["POST /v1/conversation/create HTTP/1.1", "Host: x", "Content-Length: 2",
             *[f"Authorization: Bearer {edge.token}"] * authorizations]
        )  # fmt: skip
        return exchange(edge.port, head.encode() + b"\r\n\r\n{}")

    twice = volc(2)
    assert twice.status == 400, twice
    assert twice.json()["ResponseMetadata"]["Error"]["Code"] == "MissingRequestInfo"
    twice = coze(2)
    assert (twice.status, twice.json()["code"]) == (401, 4100), twice
    assert _count(edge.database_url) == before
    # either request with one header is served: the second header alone made the difference
    assert volc(1).status == 200
    assert coze(1).status == 200
    assert _count(edge.database_url) == before + 2


def test_the_clients_read_the_edge_envelope(edge: Edge) -> None:
    """cozepy and volc-sdk-python, pointed at a path of neither dialect, each read their half."""
    http = SyncHTTPClient(timeout=30)
    coze = Coze(auth=TokenAuth(edge.token), base_url=edge.served.base_url + "/v2", http_client=http)
    try:
        with pytest.raises(CozeAPIError) as raised:
            coze.conversations.create(bot_id="b")
    finally:
        http.close()
    assert raised.value.code == 4200 and raised.value.msg
    assert raised.value.logid and re.fullmatch(r"\d{14}[0-9A-F]{18}", raised.value.logid)

    info = ServiceInfo(edge.served.host, {"Accept": "application/json"},
                       Credentials(edge.access_key, edge.secret_key, "rtc", "cn-north-1"),
                       5, 30, scheme="http")  # fmt: skip
    api = {"CreateConversation": ApiInfo("POST", "/foo", CREATE, {}, {})}
    service = Service(info, api)
    service.set_ak(edge.access_key)
    service.set_sk(edge.secret_key)
    try:
        with pytest.raises(Exception) as failed:  # volcengine raises a bare Exception
            service.json("CreateConversation", {}, b"{}")
    finally:
        service.session.close()
    error = json.loads(failed.value.args[0])["ResponseMetadata"]["Error"]
    assert error["Code"] == "InvalidActionOrVersion"


@pytest.mark.parametrize("code", [ErrorCode.INVALID_PARAM, ErrorCode.ROUTE_NOT_FOUND])
def test_both_dialects_agree_on_the_status_of_the_edge_errors(code: ErrorCode) -> None:
    assert VOLC_ERRORS[code][2] == COZE_ERRORS[code][1]


def test_slow_headers_still_parse(edge: Edge) -> None:
    """The strict parser is about bytes, not timing: a request sent a byte at a time is served."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as conn:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(0.001)
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
