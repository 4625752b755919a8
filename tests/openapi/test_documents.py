"""The OpenAPI documents: valid OpenAPI 3.1, every declared operation in them and nothing else,
every error code of each dialect's table in its error schemas, and the copies in docs/openapi/
equal to what the server generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.dialects.volc.actions import ACTIONS, VERSION
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.openapi import DOCUMENTS, coze_document, rendered, volcengine_document

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def error_codes(document: dict[str, Any], status: int, envelope: str) -> list[Any]:
    schema = document["components"]["schemas"][f"Error{status}"]
    if envelope == "volcengine":
        error = schema["properties"]["ResponseMetadata"]["properties"]["Error"]
        return list(error["properties"]["Code"]["enum"])
    return list(schema["properties"]["code"]["enum"])


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_each_document_is_valid_openapi_3_1(name: str) -> None:
    document = DOCUMENTS[name]()
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    for schema in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)


def test_every_volcengine_action_is_one_operation_and_nothing_else_is() -> None:
    found = operations(volcengine_document())
    assert set(found) == {("post", f"/#Action={name}") for name in ACTIONS}
    for (_, path), operation in found.items():
        action = ACTIONS[operation["operationId"]]
        assert path == f"/#Action={action.name}"
        query = {p["name"]: p["schema"]["const"] for p in operation["parameters"]}
        assert query == {"Action": action.name, "Version": VERSION}
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{action.request.__name__}"}
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        result = {"$ref": f"#/components/schemas/{action.result.__name__}"}
        assert answer["properties"]["Result"] == result


def test_every_coze_endpoint_is_one_operation_and_nothing_else_is() -> None:
    found = operations(coze_document())
    expected = {
        (e.method.lower(), e.path.replace(":conversation_id", "{conversation_id}").replace(
            ":message_id", "{message_id}")): e
        for e in ENDPOINTS
    }  # fmt: skip
    assert set(found) == set(expected)
    for key, operation in found.items():
        endpoint = expected[key]
        assert operation["operationId"] == endpoint.operation
        assert ("requestBody" in operation) == (endpoint.body is not None)
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        declared = set(endpoint.query.__annotations__) if endpoint.query else set()
        assert query == declared
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"$ref": f"#/components/schemas/{endpoint.answer.__name__}"} in answer["allOf"]


def test_every_volcengine_error_is_in_the_error_schema_of_its_status() -> None:
    document = volcengine_document()
    for code, _code_n, status in VOLC_ERRORS.values():
        assert code in error_codes(document, status, "volcengine"), (code, status)
    statuses = {str(status) for _, _, status in VOLC_ERRORS.values()}
    for operation in operations(document).values():
        assert set(operation["responses"]) == {"200"} | statuses


def test_every_coze_error_is_in_the_error_schema_of_its_status() -> None:
    document = coze_document()
    for code, status in COZE_ERRORS.values():
        assert code in error_codes(document, status, "coze"), (code, status)
    statuses = {str(status) for _, status in COZE_ERRORS.values()}
    for operation in operations(document).values():
        assert set(operation["responses"]) == {"200"} | statuses


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_rate_limited_answers_document_retry_after(name: str) -> None:
    headers = DOCUMENTS[name]()["components"]["responses"]["Error429"]["headers"]
    assert headers["Retry-After"]["schema"] == {"type": "integer", "minimum": 0}


def test_optional_request_fields_and_blank_query_parameters_count_as_absent() -> None:
    # schemathesis found both accepted where the documents had said no.
    volc = volcengine_document()["components"]["schemas"]
    assert volc["SendMessageRequest"]["properties"]["ClientMsgId"]["type"] == ["string", "null"]
    coze = coze_document()
    body = coze["components"]["schemas"]["CreateConversationBody"]["properties"]["messages"]
    assert body["type"] == ["array", "null"]
    listing = coze["paths"]["/v1/conversations"]["get"]["parameters"]
    page_num = next(p for p in listing if p["name"] == "page_num")
    assert jsonschema_rs.is_valid(page_num["schema"], "")
    assert jsonschema_rs.is_valid(page_num["schema"], 2)
    assert not jsonschema_rs.is_valid(page_num["schema"], "2")


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_the_committed_documents_are_the_generated_ones(name: str) -> None:
    committed = (DOCS / name).read_bytes() if (DOCS / name).exists() else b""
    assert committed == rendered()[name], (
        f"docs/openapi/{name} is not what the declarations generate: run `make openapi`"
    )
